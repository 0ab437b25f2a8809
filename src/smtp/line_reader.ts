/**
 * Bounded input for the session: command lines with a length cap (an
 * over-long line is skipped up to its end, never buffered whole), and the
 * DATA phase through {@link DataDecoder}. Bytes read past a line or past the
 * end of DATA stay buffered for the next call (pipelining).
 *
 * @module
 */
import type { ByteStream } from "./byte_stream.ts";
import { DataDecoder } from "./data_decoder.ts";

const LF = 10;
const CR = 13;
const EMPTY = new Uint8Array(0);

/** One result of {@link LineReader.readLine}. */
export type LineResult =
  | { kind: "line"; line: Uint8Array }
  | { kind: "too_long" }
  | { kind: "eof" };

/** Outcome of reading a DATA section. */
export interface DataResult {
  /** `false` when the stream ended before the end-of-data mark. */
  complete: boolean;
  /** Whether a bare LF was seen. */
  bareLf: boolean;
}

/** Reads CRLF-terminated lines and DATA sections from a {@link ByteStream}. */
export class LineReader {
  #stream: ByteStream;
  #pending: Uint8Array = EMPTY;

  /** @param stream the connection to read from */
  constructor(stream: ByteStream) {
    this.#stream = stream;
  }

  /** Whether a complete line is already buffered (the client pipelined). */
  hasBufferedLine(): boolean {
    return this.#pending.indexOf(LF) !== -1;
  }

  /** Whether any unread bytes are buffered. */
  hasBuffered(): boolean {
    return this.#pending.length > 0;
  }

  /** Drops buffered input (before a STARTTLS handshake). */
  discard(): void {
    this.#pending = EMPTY;
  }

  /**
   * Reads one line, without its CRLF (a bare LF also ends a command line).
   * A line longer than `maxLength` bytes is consumed up to its end and
   * reported as `too_long`; memory stays bounded by `maxLength` plus one chunk.
   */
  async readLine(maxLength: number): Promise<LineResult> {
    let scanFrom = 0;
    let discarding = false;
    for (;;) {
      const pending = this.#pending;
      const lf = pending.indexOf(LF, scanFrom);
      if (lf !== -1) {
        this.#pending = pending.subarray(lf + 1);
        const end = lf > 0 && pending[lf - 1] === CR ? lf - 1 : lf;
        if (discarding || end > maxLength) return { kind: "too_long" };
        return { kind: "line", line: pending.subarray(0, end) };
      }
      if (pending.length > maxLength + 1) {
        discarding = true;
        this.#pending = EMPTY;
      }
      scanFrom = this.#pending.length;
      const chunk = await this.#stream.read();
      if (chunk === null) return { kind: "eof" };
      this.#pending = this.#pending.length === 0 ? chunk : concat(this.#pending, chunk);
    }
  }

  /**
   * Reads a DATA section up to and including `<CRLF>.<CRLF>`, passing the
   * unstuffed message bytes to `sink`. Bytes after the end mark stay buffered.
   * `drain`, when given, is awaited after each chunk (sink back-pressure).
   */
  async readData(
    sink: (bytes: Uint8Array) => void,
    drain?: () => Promise<void> | undefined,
  ): Promise<DataResult> {
    const decoder = new DataDecoder(sink);
    let chunk: Uint8Array | null = this.#pending;
    this.#pending = EMPTY;
    for (;;) {
      if (chunk.length > 0) {
        const { consumed, done } = decoder.push(chunk);
        if (done) {
          this.#pending = chunk.subarray(consumed);
          return { complete: true, bareLf: decoder.sawBareLf };
        }
        // Back-pressure: let the sink catch up before reading more.
        const waiting = drain?.();
        if (waiting) await waiting;
      }
      chunk = await this.#stream.read();
      if (chunk === null) return { complete: false, bareLf: decoder.sawBareLf };
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
