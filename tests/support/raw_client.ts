/**
 * A tiny raw SMTP line client for tests that assert exact reply lines:
 * plain TCP via `Deno.connect` with no-delay, `Deno.startTls` for STARTTLS
 * and implicit TLS (trusting the test CA, server name `localhost`).
 *
 * It sends lines or raw bytes, reads whole (multi-line) replies, counts the
 * socket reads that carried data (so a test can see how replies were
 * batched) and can assert that the server closed the connection.
 *
 * @example
 * ```ts ignore
 * const c = await RawClient.connect({ port: t.submissionPort, caPem: t.caPem });
 * strictEqual((await c.reply()).text, "220 relay.test ESMTP relay ready");
 * strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
 * c.close();
 * ```
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One complete reply as it came over the wire. */
export interface RawReply {
  /** The basic code of the last line. */
  code: number;
  /** Every line without its CRLF, e.g. `["250-relay.test Hello x", "250 SIZE 10"]`. */
  lines: string[];
  /** The lines joined with `\n`: handy for exact single-line assertions. */
  text: string;
}

/** Options for {@link RawClient.connect}. */
export interface RawClientOptions {
  port: number;
  /** PEM of the CA that signed the server certificate (needed for any TLS). */
  caPem?: string;
  /** Start TLS right after connecting (SMTPS). */
  implicitTls?: boolean;
  /** Milliseconds a read may wait before the test fails; default 5000. */
  timeoutMs?: number;
}

/** A connected raw client. */
export class RawClient {
  #conn: Deno.Conn | Deno.TlsConn;
  #caPem: string | undefined;
  #buffer: Uint8Array = new Uint8Array(0);
  #readBuf = new Uint8Array(64 * 1024);
  #timeoutMs: number;
  #closed = false;
  #tls = false;
  #pending: Promise<number | null> | null = null;
  /** Number of socket reads that returned data so far. */
  reads = 0;

  private constructor(conn: Deno.Conn | Deno.TlsConn, options: RawClientOptions) {
    this.#conn = conn;
    this.#caPem = options.caPem;
    this.#timeoutMs = options.timeoutMs ?? 5000;
  }

  /** Connects to 127.0.0.1 (and starts TLS at once when `implicitTls`). */
  static async connect(options: RawClientOptions): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
    conn.setNoDelay(true);
    const client = new RawClient(conn, options);
    if (options.implicitTls) {
      try {
        await client.#handshake();
      } catch (error) {
        client.close();
        throw error;
      }
    }
    return client;
  }

  /** Connects and reads the greeting; returns the client and the greeting reply. */
  static async open(options: RawClientOptions): Promise<[RawClient, RawReply]> {
    const client = await RawClient.connect(options);
    try {
      return [client, await client.reply()];
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** Whether TLS is up on this connection. */
  get tls(): boolean {
    return this.#tls;
  }

  /** Bytes received but not yet consumed by {@link reply}. */
  get buffered(): Uint8Array {
    return this.#buffer;
  }

  async #handshake(): Promise<void> {
    if (!this.#caPem) throw new Error("RawClient: caPem is needed for TLS");
    if (this.#buffer.length > 0 || this.#pending) {
      throw new Error(`RawClient: unread bytes or a pending read before the TLS handshake`);
    }
    this.#conn = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "localhost",
      caCerts: [this.#caPem],
    });
    await (this.#conn as Deno.TlsConn).handshake();
    this.#tls = true;
  }

  /** Upgrades to TLS (after the server's 220 to STARTTLS). */
  startTls(): Promise<void> {
    return this.#handshake();
  }

  /** Sends `STARTTLS`, expects `220 2.0.0 Ready to start TLS`, and upgrades. */
  async starttls(): Promise<void> {
    const reply = await this.command("STARTTLS");
    if (reply.text !== "220 2.0.0 Ready to start TLS") {
      throw new Error(`STARTTLS refused: ${reply.text}`);
    }
    await this.#handshake();
  }

  /** Writes raw bytes (or a string as UTF-8) exactly as given. */
  async write(data: Uint8Array | string): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) {
      const n = await this.#conn.write(bytes);
      bytes = bytes.subarray(n);
    }
  }

  /** Writes raw bytes, ignoring a peer that already hung up (EPIPE/ECONNRESET). */
  async writeIgnoringClose(data: Uint8Array | string): Promise<boolean> {
    try {
      await this.write(data);
      return true;
    } catch (error) {
      if (isClosedError(error)) return false;
      throw error;
    }
  }

  /** Sends one command line; CRLF is appended. */
  send(line: string): Promise<void> {
    return this.write(`${line}\r\n`);
  }

  /** Sends a line and reads its reply. */
  async command(line: string): Promise<RawReply> {
    await this.send(line);
    return await this.reply();
  }

  /** Reads one raw chunk from the socket; `null` at EOF. Fails the test after the timeout. */
  async #readChunk(): Promise<Uint8Array | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#timeoutMs);
    });
    // A read left pending by a timeout is reused, never doubled.
    this.#pending ??= this.#conn.read(this.#readBuf);
    let n: number | null | "timeout";
    try {
      n = await Promise.race([this.#pending, timeout]);
    } catch (error) {
      this.#pending = null;
      if (isClosedError(error)) return null;
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (n === "timeout") throw new ReadTimeoutError(this.#timeoutMs);
    this.#pending = null;
    if (n === null) return null;
    this.reads++;
    return this.#readBuf.slice(0, n);
  }

  async #fill(): Promise<boolean> {
    const chunk = await this.#readChunk();
    if (chunk === null) return false;
    const next = new Uint8Array(this.#buffer.length + chunk.length);
    next.set(this.#buffer, 0);
    next.set(chunk, this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  /** Reads one line (without CRLF), or `null` at EOF. */
  async readLine(): Promise<string | null> {
    for (;;) {
      const lf = this.#buffer.indexOf(10);
      if (lf !== -1) {
        const end = lf > 0 && this.#buffer[lf - 1] === 13 ? lf - 1 : lf;
        const line = decoder.decode(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.slice(lf + 1);
        return line;
      }
      if (!await this.#fill()) return null;
    }
  }

  /** Reads one complete reply (every continuation line up to the `NNN ` line). */
  async reply(): Promise<RawReply> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.readLine();
      if (line === null) {
        throw new Error(
          `RawClient: connection closed inside a reply (got ${JSON.stringify(lines)})`,
        );
      }
      lines.push(line);
      if (!/^\d{3}-/.test(line)) break;
    }
    const last = lines[lines.length - 1];
    return { code: Number(last.slice(0, 3)), lines, text: lines.join("\n") };
  }

  /** Reads `count` replies (answers to pipelined commands). */
  async replies(count: number): Promise<RawReply[]> {
    const out: RawReply[] = [];
    for (let i = 0; i < count; i++) out.push(await this.reply());
    return out;
  }

  /**
   * Waits for the server to close the connection; fails if it sends
   * anything first (or keeps it open past the timeout).
   */
  async expectEof(): Promise<void> {
    if (this.#buffer.length > 0) {
      throw new Error(`RawClient: expected EOF, have ${decoder.decode(this.#buffer)}`);
    }
    const chunk = await this.#readChunk();
    if (chunk !== null) {
      throw new Error(`RawClient: expected EOF, got ${JSON.stringify(decoder.decode(chunk))}`);
    }
  }

  /** Reads everything until the server closes; returns it as text (lossy UTF-8). */
  async readAll(): Promise<string> {
    const parts = [decoder.decode(this.#buffer)];
    this.#buffer = new Uint8Array(0);
    for (;;) {
      const chunk = await this.#readChunk();
      if (chunk === null) return parts.join("");
      parts.push(decoder.decode(chunk));
    }
  }

  /**
   * Checks that nothing arrives within `ms` (the server stays silent);
   * resolves `false` if data arrived, `true` otherwise.
   */
  async silentFor(ms: number): Promise<boolean> {
    if (this.#buffer.length > 0) return false;
    const saved = this.#timeoutMs;
    this.#timeoutMs = ms;
    try {
      const chunk = await this.#readChunk();
      if (chunk === null) return false;
      this.#buffer = chunk;
      return false;
    } catch (error) {
      if (error instanceof ReadTimeoutError) return true;
      throw error;
    } finally {
      this.#timeoutMs = saved;
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending?.catch(() => {});
    try {
      this.#conn.close();
    } catch { /* already closed by a failed read */ }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** No data arrived within the client's timeout. */
export class ReadTimeoutError extends Error {
  /** @param ms the timeout that passed */
  constructor(ms: number) {
    super(`RawClient: no data within ${ms} ms`);
    this.name = "ReadTimeoutError";
  }
}

function isClosedError(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    (error instanceof Error && /close_notify|unexpected eof|peer closed/i.test(error.message));
}

/** Base64 of a UTF-8 string (SASL payloads in tests). */
export function b64(text: string): string {
  return encoder.encode(text).toBase64();
}

/** The SASL PLAIN initial response for `authcid`/`password` (empty authzid). */
export function plain(authcid: string, password: string, authzid = ""): string {
  return b64(`${authzid}\0${authcid}\0${password}`);
}

/** Where a test relay listens (a `TestRelay` fits). */
export interface RawTarget {
  smtpsPort: number;
  submissionPort: number;
  caPem: string;
}

/** The two listeners. */
export type PortKind = "smtps" | "submission";

/** Both listener kinds, for tests that must hold on each port. */
export const PORTS: readonly PortKind[] = ["smtps", "submission"];

/** The test relay's greeting line. */
export const GREETING = "220 relay.test ESMTP relay ready";

/** Connects to a listener (TLS at once on SMTPS) and reads the greeting. */
export function connectTo(target: RawTarget, kind: PortKind): Promise<[RawClient, RawReply]> {
  return RawClient.open({
    port: kind === "smtps" ? target.smtpsPort : target.submissionPort,
    caPem: target.caPem,
    implicitTls: kind === "smtps",
  });
}

function expect(reply: RawReply, code: number, step: string): void {
  if (reply.code !== code) throw new Error(`${step}: expected ${code}, got ${reply.text}`);
}

/**
 * Connects, greets with EHLO and, on submission, runs STARTTLS and EHLO
 * again: the session is ready for AUTH.
 */
export async function greeted(
  target: RawTarget,
  kind: PortKind,
  helo = "client.example",
): Promise<RawClient> {
  const [client, greeting] = await connectTo(target, kind);
  try {
    expect(greeting, 220, "greeting");
    expect(await client.command(`EHLO ${helo}`), 250, "EHLO");
    if (kind === "submission") {
      await client.starttls();
      expect(await client.command(`EHLO ${helo}`), 250, "EHLO after STARTTLS");
    }
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}

/** {@link greeted}, then AUTH PLAIN as `email` (alice by default), expecting 235. */
export async function authenticated(
  target: RawTarget,
  kind: PortKind,
  user: { email: string; password: string } = {
    email: "alice@example.com",
    password: "alice-secret-1",
  },
): Promise<RawClient> {
  const client = await greeted(target, kind);
  try {
    expect(await client.command(`AUTH PLAIN ${plain(user.email, user.password)}`), 235, "AUTH");
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}

/** A message transaction for {@link transaction}. */
export interface RawMessage {
  from: string;
  to: string[];
  /** Message bytes as sent after DATA (already dot-stuffed, ending in CRLF). */
  data: string | Uint8Array;
  /** Extra MAIL FROM parameters, e.g. `SMTPUTF8`. */
  mailParams?: string;
}

/**
 * Runs MAIL, RCPT..., DATA, the message and the final dot, expecting every
 * step to succeed up to 354; returns the reply to the final dot.
 */
export async function transaction(client: RawClient, message: RawMessage): Promise<RawReply> {
  const params = message.mailParams ? ` ${message.mailParams}` : "";
  expect(await client.command(`MAIL FROM:<${message.from}>${params}`), 250, "MAIL");
  for (const to of message.to) expect(await client.command(`RCPT TO:<${to}>`), 250, "RCPT");
  expect(await client.command("DATA"), 354, "DATA");
  await client.write(message.data);
  return await client.command(".");
}

/** The queue id in `250 2.0.0 Ok: queued as ID`, or throws. */
export function queueId(reply: RawReply): string {
  const match = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(reply.text);
  if (!match) throw new Error(`not a queued reply: ${reply.text}`);
  return match[1];
}

/**
 * Splits a stored message into our prepended `Received:` header (with its
 * folded continuation lines) and the bytes the client sent.
 */
export function splitReceived(stored: Uint8Array): { received: string; rest: Uint8Array } {
  const prefix = decoder.decode(stored.subarray(0, 9));
  if (prefix !== "Received:") throw new Error(`stored message starts with ${prefix}`);
  let i = 0;
  for (;;) {
    const lf = stored.indexOf(10, i);
    if (lf === -1) throw new Error("Received header has no end");
    const next = stored[lf + 1];
    i = lf + 1;
    if (next !== 9 && next !== 32) break;
  }
  return { received: decoder.decode(stored.subarray(0, i)), rest: stored.subarray(i) };
}

/**
 * Waits until `<outbox>/<id>.eml` exists and returns its bytes. The `file:`
 * backend renames each file into place whole, `<id>.json` (the envelope)
 * before `<id>.eml`, so once this resolves both are complete: a test may read
 * the `.json` right away without waiting again.
 */
export async function waitForMessage(
  outbox: string,
  id: string,
  timeoutMs = 5000,
): Promise<Uint8Array> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // Renamed into place last, after the .json: whole, and the envelope is there too.
      return await Deno.readFile(`${outbox}/${id}.eml`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (Date.now() > deadline) {
      throw new Error(`message ${id} not in ${outbox} after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
