/**
 * The SMTP side of the benchmark: where to submit, how to build a test
 * message, and the three ways of sending (a connection per message, or many
 * messages on a pooled connection) as tasks for `load.ts`.
 *
 * @module
 */
import { SmtpClient, type SmtpSecurity } from "../src/delivery/smtp_client.ts";

/** Where and as whom the benchmark submits. */
export interface SmtpTarget {
  host: string;
  port: number;
  security: SmtpSecurity;
  /** Certificate name to check (default: host). */
  servername?: string;
  /** Extra trusted CAs (PEM). */
  caCerts?: string[];
  /** AUTH PLAIN credentials; no AUTH when absent. */
  username?: string;
  password?: string;
  /** An OAuth2 access token: AUTH XOAUTH2 for `username` instead of PLAIN. */
  accessToken?: string;
  /** Envelope sender and recipients. */
  from: string;
  to: string[];
  /** Per-reply timeout, ms (default 30 s). */
  timeoutMs?: number;
}

/** Connects, says EHLO (and STARTTLS), and authenticates. */
export async function openSession(target: SmtpTarget): Promise<SmtpClient> {
  const timeout = target.timeoutMs ?? 30_000;
  const client = await SmtpClient.connect({
    host: target.host,
    port: target.port,
    security: target.security,
    servername: target.servername,
    caCerts: target.caCerts,
    ehloName: "bench.localhost",
    timeouts: { connect: timeout, command: timeout, data: timeout },
  });
  try {
    if (target.username !== undefined && target.accessToken !== undefined) {
      const payload = `user=${target.username}\x01auth=Bearer ${target.accessToken}\x01\x01`;
      const reply = await client.authRaw("XOAUTH2", new TextEncoder().encode(payload).toBase64());
      if (reply.code !== 235) throw new Error(`XOAUTH2 refused: ${reply.code}`);
    } else if (target.username !== undefined && target.password !== undefined) {
      await client.auth({ username: target.username, password: target.password });
    }
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}

/** Sends one message on an open session; throws unless the final reply was 2xx. */
export async function sendOn(
  client: SmtpClient,
  target: SmtpTarget,
  message: Uint8Array,
): Promise<void> {
  const result = await client.send({
    from: target.from,
    to: target.to,
    data: message,
    params: { size: true },
  });
  if (result.outcome !== "sent") {
    const reply = result.final ?? result.data ?? result.recipients.find((r) =>
      !r.accepted
    )?.reply ??
      result.mail;
    throw new Error(`${result.outcome}: ${reply?.code} ${reply?.lines.join(" ")}`);
  }
}

/** One message on a new connection: connect, AUTH, send, QUIT. */
export async function submitOnNewConnection(
  target: SmtpTarget,
  message: Uint8Array,
): Promise<void> {
  const client = await openSession(target);
  try {
    await sendOn(client, target, message);
  } finally {
    await client.quit();
  }
}

/**
 * One message on a pooled connection: RSET first (as a pool does before
 * reusing a connection), except for the first message on it.
 */
export async function submitOnPooled(
  client: SmtpClient,
  target: SmtpTarget,
  message: Uint8Array,
  taskOnSession: number,
): Promise<void> {
  if (taskOnSession > 0) await client.rset();
  await sendOn(client, target, message);
}

/**
 * Builds a plain-text message of about `size` bytes (at least the headers):
 * CRLF lines of 76 characters, a unique Message-ID per call.
 */
export function makeMessage(options: { from: string; to: string[]; size: number }): Uint8Array {
  const id = crypto.randomUUID();
  const headers = [
    `From: <${options.from}>`,
    `To: ${options.to.map((t) => `<${t}>`).join(", ")}`,
    `Subject: relay benchmark ${id.slice(0, 8)}`,
    `Message-ID: <${id}@bench.localhost>`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    "",
  ].join("\r\n");
  let body = "";
  const line = "The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrs\r\n";
  while (headers.length + body.length + line.length <= options.size) body += line;
  const rest = options.size - headers.length - body.length;
  if (rest > 2) body += "x".repeat(rest - 2) + "\r\n";
  return new TextEncoder().encode(headers + body);
}
