/**
 * The ceiling of the benchmark: Node's `smtp-server` (npm) doing zero work,
 * in its own process so that its CPU can be read from `/proc` like the
 * relay's. It accepts every AUTH (PLAIN, LOGIN, XOAUTH2) without checking,
 * every sender and recipient, and discards the data; it greets without the
 * package's 100 ms early-talker pause (see `greetAtOnce`). What a JavaScript SMTP
 * server reaches on one core here is the yardstick the relay's rows are
 * divided by (FACTS.md: ~8,000 msg/s pooled on the 2-core machine).
 *
 * ```text
 * deno run --allow-net --allow-read bench/ceiling_server.ts --cert FILE --key FILE [--starttls]
 * ```
 *
 * prints `listening <port>` on stdout once it accepts connections.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { SMTPServer } from "smtp-server";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";

/** A running ceiling server (child process). */
export interface CeilingProcess {
  pid: number;
  port: number;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts the ceiling server as a child `deno run` process with the given
 * certificate (PEM files) and waits until it listens.
 */
export async function startCeiling(options: {
  certPath: string;
  keyPath: string;
  /** Plain port with STARTTLS instead of implicit TLS. */
  starttls?: boolean;
}): Promise<CeilingProcess> {
  const args = [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-env",
    "--allow-sys",
    new URL(import.meta.url).pathname,
    "--cert",
    options.certPath,
    "--key",
    options.keyPath,
    ...(options.starttls ? ["--starttls"] : []),
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      await child.status;
      throw new Error(`the ceiling server exited before listening: ${text}`);
    }
    text += value;
  }
  // Keep draining stdout so that the child never blocks on a full pipe.
  const drained = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  const port = Number(/^listening (\d+)/.exec(text)?.[1]);
  if (!Number.isInteger(port)) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error(`unexpected output from the ceiling server: ${text}`);
  }
  return {
    pid: child.pid,
    port,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await drained;
    },
  };
}

/**
 * smtp-server holds every greeting back 100 ms to catch clients that talk
 * before it (a spam defence, `init()` in smtp-connection.js); the relay has
 * no such pause, so the ceiling greets at once, as a zero-work server would.
 */
function greetAtOnce(): void {
  const proto = SMTPConnection.prototype as {
    init(): void;
    _setListeners(ready: () => void): void;
    connectionReady(): void;
  };
  proto.init = function (this: typeof proto) {
    this._setListeners(() => this.connectionReady());
  };
}

function serve(args: string[]): void {
  greetAtOnce();
  const { values } = parseArgs({
    args,
    options: {
      cert: { type: "string" },
      key: { type: "string" },
      port: { type: "string", default: "0" },
      starttls: { type: "boolean", default: false },
    },
  });
  if (!values.cert || !values.key) throw new Error("--cert and --key are required");
  const server = new SMTPServer({
    secure: !values.starttls,
    key: Deno.readTextFileSync(values.key),
    cert: Deno.readTextFileSync(values.cert),
    name: "localhost",
    banner: "zero-work ceiling",
    size: 64 * 1024 * 1024,
    authMethods: ["PLAIN", "LOGIN", "XOAUTH2"],
    disableReverseLookup: true,
    logger: false,
    onAuth(
      auth: { username?: string },
      _session: unknown,
      callback: (error: Error | null, response?: { user: string }) => void,
    ) {
      callback(null, { user: auth.username ?? "anyone" });
    },
    onData(
      stream: { on(event: "end", listener: () => void): void; resume(): void },
      _session: unknown,
      callback: (error?: Error | null) => void,
    ) {
      stream.on("end", () => callback());
      stream.resume();
    },
  });
  server.on("error", () => {/* a client's reset must not end the benchmark */});
  // smtp-server leaves Nagle on: each reply would wait ~40 ms for the client's delayed ACK.
  server.server.on("connection", (socket: { setNoDelay(on: boolean): void }) => {
    socket.setNoDelay(true);
  });
  server.listen(Number(values.port), "127.0.0.1", () => {
    const address = server.server.address() as { port: number };
    console.log(`listening ${address.port}`);
  });
  const stop = () => {
    server.close(() => Deno.exit(0));
    setTimeout(() => Deno.exit(0), 2000); // connections a client left open
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

if (import.meta.main) serve(Deno.args);
