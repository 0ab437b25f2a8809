/**
 * A relay as a real process (`main.ts serve --config FILE`), for tests that
 * kill it (SIGKILL) and start it again: the config is written as TOML from
 * the same section objects {@link startTestRelay} takes.
 *
 * @module
 */
import { join } from "node:path";
import { startServe, toToml } from "./serve_process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

/** A running relay process. */
export interface RelayProcess {
  /** The last few KB of its stdout and stderr (for failure messages). */
  output(): string;
  /** Kills it (SIGKILL: no graceful shutdown, as in a crash) and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Writes `config` to `dir/relay.toml`, starts `main.ts serve` and waits until
 * `waitPort` accepts connections.
 */
export async function startRelayProcess(
  dir: string,
  config: Record<string, Record<string, unknown>>,
  waitPort: number,
): Promise<RelayProcess> {
  const path = join(dir, "relay.toml");
  await Deno.writeTextFile(path, toToml(config));
  const relay = await startServe({
    args: ["-A", MAIN, "serve", "--config", path],
    cwd: ROOT,
    ready: { port: waitPort },
  });
  return {
    output: () => relay.output(),
    kill: async () => {
      if (!relay.exited()) relay.kill("SIGKILL");
      await relay.status();
    },
  };
}
