/**
 * Postfix's `smtp-sink` as the relay's backend in the benchmark: a real,
 * independent SMTP server in its own process that accepts and discards
 * (no dump files), so the backend costs neither the relay nor the load
 * client any CPU. Debian package `postfix` (`/usr/sbin/smtp-sink`).
 *
 * @module
 */
import { freePort } from "./relay_process.ts";

/** Where Debian installs it. */
export const SMTP_SINK = "/usr/sbin/smtp-sink";

/** A running smtp-sink. */
export interface SmtpSinkBackend {
  port: number;
  /** Stops it (SIGTERM). */
  stop(): Promise<void>;
}

/** Starts smtp-sink on 127.0.0.1 and a free port, and waits until it accepts. */
export async function startSmtpSink(): Promise<SmtpSinkBackend> {
  const port = freePort();
  const args = [...(Deno.uid() === 0 ? ["-u", "nobody"] : []), `127.0.0.1:${port}`, "256"];
  const child = new Deno.Command(SMTP_SINK, { args, stdout: "null", stderr: "null" }).spawn();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await status;
  };
  const deadline = performance.now() + 10_000;
  while (true) {
    if (exited) throw new Error(`${SMTP_SINK} exited at start (${(await status).code})`);
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return { port, stop };
    } catch {
      if (performance.now() > deadline) {
        await stop();
        throw new Error(`${SMTP_SINK} did not listen on 127.0.0.1:${port}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
