/**
 * `relay serve` as a child process, for tests of what only a real process
 * shows (signals, permission flags, exit codes): starts it, collects its
 * output, waits until it listens, and always ends it.
 *
 * @example
 * ```ts ignore
 * await using relay = await startServe({ args: ["-A", MAIN, "serve", "--config", path] });
 * relay.kill("SIGHUP");
 * await until("the reload", () => relay.output().includes("TLS certificate reloaded"));
 * assert.equal((await relay.stop()).code, 0);
 * ```
 *
 * @module
 */
import { accepts } from "./ports.ts";
import { until } from "./until.ts";

/** Options for {@link startServe}. */
export interface ServeOptions {
  /** Everything after `deno run`: permission flags, the main module, `serve`, options. */
  args: string[];
  cwd?: string;
  /**
   * When it is ready: output matching a pattern (default: the start log's
   * `listening:` line), or a port on 127.0.0.1 that accepts connections
   * (for a relay that logs only errors).
   */
  ready?: RegExp | { port: number };
  /** How long it may take to get ready. */
  timeoutMs?: number;
}

/** A running `relay serve`. */
export interface ServeProcess extends AsyncDisposable {
  /** Everything it wrote so far, stdout and stderr together. */
  output(): string;
  /** Whether the process has ended. */
  exited(): boolean;
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
  /** SIGTERM, then its exit status (SIGKILL after the dispose on failure). */
  stop(): Promise<Deno.CommandStatus>;
  /** Its exit status, once it has ended (however it ended). */
  status(): Promise<Deno.CommandStatus>;
}

/** Starts `deno run <args>` and waits for `ready` in its output; throws with the output if it exits first. */
export async function startServe(options: ServeOptions): Promise<ServeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...options.args],
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await drained;
    return s;
  });
  const end = async () => {
    if (!exited) child.kill("SIGKILL");
    await status;
  };
  const ready = options.ready ?? /listening: /;
  try {
    await until("relay serve to be ready", async () => {
      if (exited) throw new Error(`relay serve exited:\n${output}`);
      return ready instanceof RegExp ? ready.test(output) : await accepts(ready.port);
    }, options.timeoutMs ?? 30_000);
  } catch (error) {
    await end();
    throw error;
  }
  return {
    output: () => output,
    exited: () => exited,
    kill: (signal) => child.kill(signal),
    stop: async () => {
      if (!exited) child.kill("SIGTERM");
      return await status;
    },
    status: () => status,
    [Symbol.asyncDispose]: end,
  };
}

/** Renders `{ section: { key: value } }` as TOML (values as JSON, which TOML reads alike). */
export function toToml(sections: Record<string, Record<string, unknown>>): string {
  return Object.entries(sections).map(([section, values]) =>
    `[${section}]\n` +
    Object.entries(values).map(([key, value]) => `${key} = ${JSON.stringify(value)}`).join("\n")
  ).join("\n") + "\n";
}

/**
 * A small `relay serve` config with every file under `dir` (a development
 * certificate generated there at start), one SMTP listener on 127.0.0.1,
 * OAuth2 off, the admin listener on a free port, JSON logs at `info`.
 * `sections` adds keys to (or replaces keys of) its tables.
 */
export function serveConfig(
  dir: string,
  options: {
    listener: "smtps" | "submission";
    port: number;
    sections?: Record<string, Record<string, unknown>>;
  },
): string {
  const path = (...parts: string[]) => [dir, ...parts].join("/");
  const other = options.listener === "smtps" ? "submission" : "smtps";
  const config: Record<string, Record<string, unknown>> = {
    server: { hostname: "relay.test", shutdown_grace_seconds: 1 },
    [options.listener]: { listen: `127.0.0.1:${options.port}` },
    [other]: { enabled: false },
    oauth: { enabled: false },
    admin: { listen: "127.0.0.1:0" },
    tls: { cert: path("certs", "server.crt"), key: path("certs", "server.key") },
    "auth.file": { users: path("users.txt"), users_dir: path("users") },
    spool: { dir: path("spool") },
    relay: { url: `file:${dir}/outbox` },
    audit: { file: path("audit.jsonl") },
    log: { level: "info", format: "json" },
  };
  for (const [section, values] of Object.entries(options.sections ?? {})) {
    config[section] = { ...config[section], ...values };
  }
  return toToml(config);
}
