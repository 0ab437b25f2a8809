/**
 * A relay as a real process (`main.ts serve --config FILE`), for tests that
 * kill it (SIGKILL) and start it again: the config is written as TOML from
 * the same section objects {@link startTestRelay} takes.
 *
 * @module
 */
import { join } from "node:path";
import { until } from "./until.ts";
import { accepts } from "./ports.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A running relay process. */
export interface RelayProcess {
  /** The last few KB of its stdout and stderr (for failure messages). */
  output(): string;
  /** Kills it (SIGKILL: no graceful shutdown, as in a crash) and waits for the exit. */
  kill(): Promise<void>;
}

/** Renders `{ section: { key: value } }` as TOML (values as JSON, which TOML reads alike). */
export function toToml(sections: Record<string, Record<string, unknown>>): string {
  return Object.entries(sections).map(([section, values]) =>
    `[${section}]\n` +
    Object.entries(values).map(([key, value]) => `${key} = ${JSON.stringify(value)}`).join("\n")
  ).join("\n") + "\n";
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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve", "--config", path],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let tail = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) tail = (tail + decoder.decode(chunk)).slice(-8000);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const done = child.status.then(async (status) => {
    exited = true;
    await drained;
    return status;
  });
  const kill = async () => {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await done;
  };
  try {
    await until(`the relay process listening on ${waitPort}`, async () => {
      if (exited) throw new Error(`the relay process exited:\n${tail}`);
      return await accepts(waitPort);
    }, 30_000);
  } catch (error) {
    await kill();
    throw error;
  }
  return { output: () => tail, kill };
}
