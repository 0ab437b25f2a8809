/**
 * Postfix's `smtp-sink` (a real, independent SMTP server) as a test
 * backend: started on 127.0.0.1 and a free port, dumping every transaction
 * to its own file, which {@linkcode PostfixSink.messages} parses back.
 *
 * Installing it (Debian; the preseed keeps apt from configuring a mail
 * system or starting a daemon):
 *
 * ```sh
 * echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
 * apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
 * ```
 *
 * `smtp-sink` offers PIPELINING, 8BITMIME (unless `-8`), AUTH (accepting
 * anything), ENHANCEDSTATUSCODES and DSN; no STARTTLS, SIZE or SMTPUTF8.
 *
 * @module
 */
import { join } from "node:path";
import { accepts, freePort } from "./ports.ts";

/** Where Debian installs it. */
export const SMTP_SINK = "/usr/sbin/smtp-sink";

/** Whether `smtp-sink` is installed. */
export function smtpSinkInstalled(): boolean {
  try {
    return Deno.statSync(SMTP_SINK).isFile;
  } catch {
    return false;
  }
}

/** One transaction from a dump file. */
export interface DumpedMessage {
  /** `X-Mail-Args:` (`<from> BODY=8BITMIME`). */
  mailArgs: string;
  /** Recipients from `X-Rcpt-Args:`, without brackets. */
  recipients: string[];
  /** The message as received, LF line ends (smtp-sink writes text lines), dots unstuffed. */
  text: string;
}

/** A running smtp-sink. */
export interface PostfixSink {
  port: number;
  /** The dump folder. */
  dir: string;
  /** Complete transactions so far. */
  messages(): Promise<DumpedMessage[]>;
  /** Waits for `count` complete transactions. */
  waitForMessages(count: number, timeoutMs?: number): Promise<DumpedMessage[]>;
  /** Stops smtp-sink and removes the dump folder. */
  close(): Promise<void>;
}

/** Parses one dump file; null while smtp-sink is still writing it. */
export function parseDump(text: string): DumpedMessage | null {
  // A finished dump ends with the empty line smtp-sink appends.
  if (!text.endsWith("\n\n")) return null;
  const lines = text.slice(0, -1).split("\n");
  let mailArgs = "";
  const recipients: string[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("X-Mail-Args: ")) mailArgs = line.slice(13);
    else if (line.startsWith("X-Rcpt-Args: ")) {
      recipients.push(line.slice(13).replace(/^<([^>]*)>.*$/, "$1"));
    } else if (line.startsWith("Received: ")) {
      // Three lines: "Received: from ...", "\tby ...;", "\tdate".
      i += 3;
      break;
    }
  }
  return { mailArgs, recipients, text: lines.slice(i, -1).join("\n") + "\n" };
}

/**
 * Starts smtp-sink with extra flags (`-8`: no 8BITMIME, `-f RCPT`: 5xx to
 * every RCPT, `-r MAIL`: 4xx to MAIL, see `man smtp-sink`), on a free port
 * or on `options.port` (to bring a backend back where it was).
 */
export async function startPostfixSink(
  flags: string[] = [],
  options: { port?: number } = {},
): Promise<PostfixSink> {
  const dir = await Deno.makeTempDir({ prefix: "relay_smtp_sink_" });
  // smtp-sink drops root privileges (-u nobody) and must still write here.
  await Deno.chmod(dir, 0o777);
  for (let attempt = 0;; attempt++) {
    const port = options.port ?? freePort();
    const args = [
      ...(Deno.uid() === 0 ? ["-u", "nobody"] : []),
      "-d",
      join(dir, "%Y%m%d%H%M%S."),
      ...flags,
      `127.0.0.1:${port}`,
      "64",
    ];
    const child = new Deno.Command(SMTP_SINK, { args, stdout: "null", stderr: "piped" })
      .spawn();
    const stderr = child.stderr.getReader();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline && !(await accepts(port))) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (exited || Date.now() >= deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      const { value } = await stderr.read();
      stderr.releaseLock();
      await child.stderr.cancel();
      // The port was taken in between: another one (or the same one again, once it is free).
      if (attempt < 3) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      await Deno.remove(dir, { recursive: true });
      throw new Error(`smtp-sink did not start: ${new TextDecoder().decode(value)}`);
    }
    stderr.releaseLock();
    const messages = async () => {
      const out: DumpedMessage[] = [];
      const names: string[] = [];
      for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
      for (const name of names.sort()) {
        const parsed = parseDump(await Deno.readTextFile(join(dir, name)));
        if (parsed) out.push(parsed);
      }
      return out;
    };
    return {
      port,
      dir,
      messages,
      async waitForMessages(count, timeoutMs = 10_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const found = await messages();
          if (found.length >= count) return found;
          if (Date.now() > until) {
            throw new Error(`smtp-sink has ${found.length} messages, expected ${count}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      },
      async close() {
        child.kill("SIGTERM");
        await status;
        await child.stderr.cancel();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  }
}
