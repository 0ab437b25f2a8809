/**
 * Reads SMTP replies (RFC 5321 4.2) from a byte connection: multi-line
 * replies (`250-...` then `250 ...`), the enhanced status code (RFC 3463) of
 * the first line, a cap on a reply's total size and a deadline per reply.
 * The errors every part of the SMTP client throws are defined here too.
 *
 * Reads go straight into one reusable buffer (no web streams: they cost
 * 2.5-3.5× the CPU), and bytes after a reply stay buffered for the next one,
 * which is what lets pipelined replies (RFC 2920) arrive in one read.
 *
 * Deadlines cost no timer per reply: an {@linkcode IoDeadline} keeps a
 * connection's reads and writes on one lazily re-armed timer.
 *
 * @example Reading one reply
 * ```ts
 * import { ReplyReader } from "./reply_reader.ts";
 *
 * const bytes = new TextEncoder().encode("250-mx.example.com\r\n250 PIPELINING\r\n");
 * let done = false;
 * const reader = new ReplyReader({
 *   read(p: Uint8Array): Promise<number | null> {
 *     if (done) return Promise.resolve(null);
 *     done = true;
 *     p.set(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 * });
 * const reply = await reader.read();
 * console.log(reply.code, reply.lines); // 250 ["mx.example.com", "PIPELINING"]
 * ```
 *
 * @module
 */

import { DeadlineTimer, type DeadlineTimerOptions } from "../mail/mod.ts";

/** One reply received from an SMTP server. */
export interface ServerReply {
  /** The three-digit reply code, 200-599. */
  code: number;
  /**
   * The enhanced status code (RFC 3463, e.g. `5.1.1`) when the first line
   * starts with one whose class matches the reply code.
   */
  enhanced?: string;
  /**
   * The text of every line after the code and separator, verbatim (an
   * enhanced status code, when present, is still at the start of the text).
   */
  lines: string[];
}

/** The base class of every error the SMTP client throws. */
export class SmtpError extends Error {
  /** Builds the error; `cause` is kept for debugging, never shown to peers. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SmtpError";
  }
}

/** The server answered a command with a reply that means "no". */
export class SmtpReplyError extends SmtpError {
  /** The reply that was received. */
  readonly reply: ServerReply;
  /** The command (verb only, never its secret arguments) the reply answered. */
  readonly command: string;

  /**
   * Builds the error.
   *
   * @param command the verb, e.g. `RCPT TO` or `AUTH PLAIN`; never AUTH data
   * @param reply the server's reply
   */
  constructor(command: string, reply: ServerReply) {
    super(`${command} failed: ${formatReply(reply)}`);
    this.name = "SmtpReplyError";
    this.command = command;
    this.reply = reply;
  }

  /** A 4xx reply: the same thing may work later. */
  get transient(): boolean {
    return isTransient(this.reply);
  }

  /** A 5xx reply: trying again will not help. */
  get permanent(): boolean {
    return isPermanent(this.reply);
  }
}

/** The server broke the protocol (malformed reply, too large, unexpected data). */
export class SmtpProtocolError extends SmtpError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SmtpProtocolError";
  }
}

/** Waiting for the server (connect, TLS, a reply, a write) took too long. */
export class SmtpTimeoutError extends SmtpError {
  /** What was being waited for, e.g. `reply`, `connect`, `data write`. */
  readonly phase: string;
  /** The limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number;

  /** Builds the error from what timed out and the limit. */
  constructor(phase: string, timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms waiting for ${phase}`);
    this.name = "SmtpTimeoutError";
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** The connection failed: refused, reset, closed early, or TLS failed. */
export class SmtpConnectionError extends SmtpError {
  /** Builds the error; `cause` carries the runtime's error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SmtpConnectionError";
  }
}

/**
 * The deadline of a connection's current operation (reading a reply,
 * writing), one operation at a time, on one lazily re-armed
 * {@linkcode DeadlineTimer}: starting an operation only records when it
 * must end, so a client that reads and writes many times per message arms
 * no timer per operation. Once the deadline passes, the read or write
 * being {@linkcode IoDeadline.race raced} rejects with
 * {@linkcode SmtpTimeoutError} (and so does any later race in the same
 * operation); the caller then closes the connection, which settles it.
 *
 * Call {@linkcode IoDeadline.dispose} when the connection closes: a timer
 * may stay armed after the last operation until the deadline it was armed
 * for.
 */
export class IoDeadline {
  #timer: DeadlineTimer;
  #phase = "";
  #limitMs = 0;
  #active = false;
  #expired = false;
  #reject: ((error: Error) => void) | null = null;

  /** @param options clock and timer functions (for tests) */
  constructor(options: DeadlineTimerOptions = {}) {
    this.#timer = new DeadlineTimer(() => this.#expire(), options);
  }

  /**
   * Starts an operation that must end within `limitMs` (0 or Infinity: no
   * limit), replacing the previous one's deadline.
   *
   * @param phase what is awaited, for the error (`reply`, `write`)
   * @param limitMs the limit, in milliseconds
   */
  start(phase: string, limitMs: number): void {
    this.#phase = phase;
    this.#limitMs = limitMs;
    this.#expired = false;
    this.#active = limitMs > 0 && limitMs < Infinity;
    if (this.#active) this.#timer.set(limitMs);
    else this.#timer.clear();
  }

  /** Ends the operation: no deadline until the next `start`. */
  finish(): void {
    this.#active = false;
    this.#timer.clear();
  }

  /**
   * Waits for `pending` until the operation's deadline. On timeout the
   * promise is left running (its rejection is swallowed).
   */
  race<T>(pending: Promise<T>): Promise<T> {
    if (this.#expired) {
      pending.catch(() => {});
      return Promise.reject(this.#error());
    }
    if (!this.#active) return pending;
    return new Promise<T>((resolve, reject) => {
      this.#reject = reject;
      pending.then(
        (value) => {
          if (this.#reject === reject) this.#reject = null;
          resolve(value);
        },
        (error) => {
          if (this.#reject === reject) this.#reject = null;
          reject(error);
        },
      );
    });
  }

  /** Cancels the timer; later operations have no deadline. */
  dispose(): void {
    this.#active = false;
    this.#timer.dispose();
  }

  #expire(): void {
    if (!this.#active) return;
    this.#expired = true;
    const reject = this.#reject;
    this.#reject = null;
    reject?.(this.#error());
  }

  #error(): SmtpTimeoutError {
    return new SmtpTimeoutError(this.#phase, this.#limitMs);
  }
}

/** True for a 2xx reply. */
export function isPositive(reply: ServerReply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

/** True for a 4xx reply (transient failure). */
export function isTransient(reply: ServerReply): boolean {
  return reply.code >= 400 && reply.code < 500;
}

/** True for a 5xx reply (permanent failure). */
export function isPermanent(reply: ServerReply): boolean {
  return reply.code >= 500 && reply.code < 600;
}

/** Formats a reply for logs and error messages: `550 5.1.1 no such user`, long text cut. */
export function formatReply(reply: ServerReply): string {
  const text = reply.lines.join(" / ");
  const cut = text.length > 300 ? `${text.slice(0, 300)}...` : text;
  return cut === "" ? String(reply.code) : `${reply.code} ${cut}`;
}

/** Anything with Deno's `read` contract (`Deno.Conn`, `Deno.TlsConn`). */
export interface ByteReader {
  /** Reads into `p`; resolves the number of bytes read, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Limits for a {@linkcode ReplyReader}. */
export interface ReplyReaderOptions {
  /** Largest total size of one reply, all lines with their line ends (default 64 KiB). */
  maxReplyBytes?: number;
  /** Initial buffer size (default 4 KiB); it grows up to `maxReplyBytes` for long lines. */
  bufferSize?: number;
  /**
   * The connection's deadline, shared with its writes (its owner disposes
   * it); default: one of the reader's own, disposed by
   * {@linkcode ReplyReader.dispose}.
   */
  deadline?: IoDeadline;
}

/** The default cap on one reply's size. */
export const DEFAULT_MAX_REPLY_BYTES = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const DASH = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?= |$)/;
const decoder = new TextDecoder();

/**
 * Reads replies from a connection, one at a time. After a timeout or an
 * error the reader is broken and every further read fails: the caller must
 * close the connection (which also settles the read still in flight).
 */
export class ReplyReader {
  #source: ByteReader;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #max: number;
  #failure: Error | null = null;
  #deadline: IoDeadline;
  #ownsDeadline: boolean;
  /** Whether the current read has waited for bytes (and so started the deadline). */
  #waited = false;

  /**
   * Creates a reader over `source`.
   *
   * @param source the connection to read from
   * @param options size limits
   */
  constructor(source: ByteReader, options: ReplyReaderOptions = {}) {
    this.#source = source;
    this.#max = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
    if (!(this.#max >= 16)) throw new RangeError("maxReplyBytes must be at least 16");
    this.#buf = new Uint8Array(Math.min(options.bufferSize ?? 4096, this.#max + 2));
    this.#ownsDeadline = options.deadline === undefined;
    this.#deadline = options.deadline ?? new IoDeadline();
  }

  /** Bytes received but not yet consumed by a reply. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Switches to another connection (after STARTTLS). Refuses when bytes are
   * still buffered: they arrived in plain text and must not be mistaken for
   * replies sent inside TLS.
   */
  setSource(source: ByteReader): void {
    if (this.buffered > 0) {
      throw new SmtpProtocolError("unread plain-text bytes would cross into the TLS session");
    }
    this.#source = source;
  }

  /**
   * Reads one complete reply.
   *
   * @param timeoutMs deadline for the whole reply; 0 or Infinity waits forever
   * @throws {SmtpProtocolError} malformed reply, or larger than the cap
   * @throws {SmtpConnectionError} end of stream or a read error
   * @throws {SmtpTimeoutError} the deadline passed
   */
  async read(timeoutMs = 0): Promise<ServerReply> {
    if (this.#failure) throw this.#failure;
    this.#waited = false;
    try {
      return await this.#read(timeoutMs > 0 && timeoutMs < Infinity ? timeoutMs : 0);
    } catch (error) {
      this.#failure = error instanceof Error ? error : new SmtpProtocolError(String(error));
      throw error;
    } finally {
      if (this.#waited) this.#deadline.finish();
    }
  }

  /**
   * Cancels the reader's own deadline timer (a deadline passed in the
   * options is its owner's to dispose). Call it when done with a reader
   * that read with a timeout.
   */
  dispose(): void {
    if (this.#ownsDeadline) this.#deadline.dispose();
  }

  async #read(timeoutMs: number): Promise<ServerReply> {
    const lines: string[] = [];
    let code = 0;
    let size = 0;
    let scan = this.#start;
    while (true) {
      const lf = this.#buf.indexOf(LF, scan);
      if (lf !== -1 && lf < this.#end) {
        const lineBytes = lf + 1 - this.#start;
        size += lineBytes;
        if (size > this.#max) throw this.#tooLarge();
        const lineEnd = lf > this.#start && this.#buf[lf - 1] === CR ? lf - 1 : lf;
        const last = this.#parseLine(this.#start, lineEnd, lines, code);
        code = last.code;
        this.#start = lf + 1;
        scan = this.#start;
        if (last.final) return toReply(code, lines);
        continue;
      }
      // Compaction moves bytes, so remember how far was scanned relative to #start.
      const scanned = this.#end - this.#start;
      if (size + scanned > this.#max) throw this.#tooLarge();
      this.#makeRoom();
      scan = this.#start + scanned;
      if (!this.#waited) {
        // The deadline starts with the first wait: a reply already buffered
        // (pipelining) is parsed at once and costs no deadline at all.
        this.#waited = true;
        this.#deadline.start("reply", timeoutMs);
      }
      const n = await this.#fill();
      if (n === null) {
        const partial = lines.length > 0 || this.#end > this.#start;
        throw new SmtpConnectionError(
          partial
            ? "connection closed in the middle of a reply"
            : "connection closed by the server",
        );
      }
      this.#end += n;
    }
  }

  #parseLine(
    from: number,
    to: number,
    lines: string[],
    code: number,
  ): { code: number; final: boolean } {
    const b = this.#buf;
    const len = to - from;
    const digits = len >= 3 && b[from] >= 0x32 && b[from] <= 0x35 &&
      b[from + 1] >= ZERO && b[from + 1] <= NINE && b[from + 2] >= ZERO && b[from + 2] <= NINE;
    const sep = len > 3 ? b[from + 3] : SP;
    if (!digits || (sep !== SP && sep !== DASH)) {
      throw new SmtpProtocolError(`malformed reply line: ${quote(b.subarray(from, to))}`);
    }
    const lineCode = (b[from] - ZERO) * 100 + (b[from + 1] - ZERO) * 10 + (b[from + 2] - ZERO);
    if (code !== 0 && lineCode !== code) {
      throw new SmtpProtocolError(`reply code changed from ${code} to ${lineCode} inside a reply`);
    }
    lines.push(len > 4 ? decoder.decode(b.subarray(from + 4, to)) : "");
    return { code: lineCode, final: sep === SP };
  }

  /** Compacts or grows the buffer so the next read has space. */
  #makeRoom(): void {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    if (this.#end < this.#buf.length) return;
    if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
      return;
    }
    // A single line longer than the buffer: grow, bounded by the reply cap.
    const grown = new Uint8Array(Math.min(this.#buf.length * 2, this.#max + 2));
    grown.set(this.#buf.subarray(0, this.#end));
    this.#buf = grown;
  }

  async #fill(): Promise<number | null> {
    const pending = this.#source.read(this.#buf.subarray(this.#end));
    try {
      return await this.#deadline.race(pending);
    } catch (error) {
      if (error instanceof SmtpError) throw error;
      throw new SmtpConnectionError(`read failed: ${describe(error)}`, { cause: error });
    }
  }

  #tooLarge(): SmtpProtocolError {
    return new SmtpProtocolError(`reply larger than ${this.#max} bytes`);
  }
}

/**
 * Waits for `promise` at most `ms` milliseconds, on a timer of its own. On
 * timeout the promise is left running (its rejection is swallowed): the
 * caller closes the connection, which settles it. For once-per-connection
 * waits (connect, TLS handshake); reads and writes use an
 * {@linkcode IoDeadline}.
 *
 * @param promise the operation
 * @param ms time left
 * @param phase what is awaited, for the error
 * @param limitMs the configured limit, for the error
 */
export async function raceTimeout<T>(
  promise: Promise<T>,
  ms: number,
  phase: string,
  limitMs: number = ms,
): Promise<T> {
  if (!(ms < Infinity)) return await promise;
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SmtpTimeoutError(phase, limitMs)), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function toReply(code: number, lines: string[]): ServerReply {
  const match = ENHANCED.exec(lines[0]);
  if (match && Number(match[1]) === Math.floor(code / 100)) {
    return { code, enhanced: `${match[1]}.${Number(match[2])}.${Number(match[3])}`, lines };
  }
  return { code, lines };
}

/** A short, printable rendering of bad bytes for an error message. */
function quote(bytes: Uint8Array): string {
  const text = decoder.decode(bytes.subarray(0, 60));
  // deno-lint-ignore no-control-regex
  return JSON.stringify(text.replace(/[\x00-\x1f\x7f]/g, "?")) + (bytes.length > 60 ? "..." : "");
}

/** The runtime error's name and message, for wrapping. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
