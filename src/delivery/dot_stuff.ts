/**
 * Encodes message content for the SMTP DATA phase (RFC 5321 4.5.2), chunk by
 * chunk: every line that starts with `.` gets a second `.`, every line end
 * becomes CRLF, the content is closed with CRLF if it does not end with one,
 * and `.` CRLF ends the data.
 *
 * Line ends: CRLF, a bare LF and a bare CR each become one CRLF. Bare CR and
 * LF are not allowed in SMTP (RFC 5321 2.3.8), and sending them is what
 * "SMTP smuggling" exploits (a receiver that ends data on `<LF>.<LF>` or
 * `<CR>.<CR>` would see a second message); after normalisation the backend
 * sees only CRLF line ends and stuffed dots.
 *
 * @example Encoding in two chunks
 * ```ts
 * import { DotStuffer } from "./dot_stuff.ts";
 *
 * const enc = new TextEncoder();
 * const stuffer = new DotStuffer();
 * const out: string[] = [];
 * out.push(new TextDecoder().decode(stuffer.push(enc.encode("Subject: x\r\n\r\n."))));
 * out.push(new TextDecoder().decode(stuffer.push(enc.encode("hidden\n"), true)));
 * console.log(out.join("")); // "Subject: x\r\n\r\n..hidden\r\n.\r\n"
 * ```
 *
 * @module
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * A streaming DATA encoder. `push` returns a view into an internal buffer
 * that is valid until the next call, so write it out before pushing again.
 */
export class DotStuffer {
  #buf: Uint8Array;
  #atLineStart = true;
  /** The previous byte was a CR (already written as CRLF): drop a following LF. */
  #afterCR = false;
  #ended = false;

  /** Creates an encoder; `bufferSize` is the initial output buffer size. */
  constructor(bufferSize = 64 * 1024) {
    this.#buf = new Uint8Array(bufferSize);
  }

  /**
   * Encodes the next chunk of content.
   *
   * @param chunk raw content bytes (any line ends)
   * @param end true for the last chunk: appends the closing CRLF if needed and `.` CRLF
   * @returns the encoded bytes, a view valid until the next call
   */
  push(chunk: Uint8Array, end = false): Uint8Array {
    if (this.#ended) throw new Error("DotStuffer: data already ended");
    // Worst case every byte doubles (`.` at line start, bare LF/CR), plus the trailer.
    const need = chunk.length * 2 + 5;
    if (this.#buf.length < need) this.#buf = new Uint8Array(Math.max(need, this.#buf.length * 2));
    const out = this.#buf;
    const n = chunk.length;
    let o = 0;
    let i = 0;
    if (this.#afterCR && n > 0) {
      if (chunk[0] === LF) i = 1;
      this.#afterCR = false;
    }
    // Positions of the next CR and LF at or after i; n means none.
    let nextCR = -1;
    let nextLF = -1;
    while (i < n) {
      if (this.#atLineStart) {
        if (chunk[i] === DOT) out[o++] = DOT;
        this.#atLineStart = false;
      }
      if (nextCR < i) {
        nextCR = chunk.indexOf(CR, i);
        if (nextCR === -1) nextCR = n;
      }
      if (nextLF < i) {
        nextLF = chunk.indexOf(LF, i);
        if (nextLF === -1) nextLF = n;
      }
      const stop = nextCR < nextLF ? nextCR : nextLF;
      if (stop > i) {
        out.set(chunk.subarray(i, stop), o);
        o += stop - i;
        i = stop;
        if (i === n) break;
      }
      // chunk[i] is CR or LF: one line end, whatever its form.
      out[o++] = CR;
      out[o++] = LF;
      this.#atLineStart = true;
      if (chunk[i] === CR) {
        if (i + 1 < n) {
          i += chunk[i + 1] === LF ? 2 : 1;
        } else {
          i += 1;
          this.#afterCR = true;
        }
      } else {
        i += 1;
      }
    }
    if (end) {
      this.#ended = true;
      if (!this.#atLineStart) {
        out[o++] = CR;
        out[o++] = LF;
      }
      out[o++] = DOT;
      out[o++] = CR;
      out[o++] = LF;
    }
    return out.subarray(0, o);
  }

  /** Starts a new message, keeping the buffer. */
  reset(): void {
    this.#atLineStart = true;
    this.#afterCR = false;
    this.#ended = false;
  }

  /** Ends the data: the closing CRLF when needed, then `.` CRLF. */
  end(): Uint8Array {
    return this.push(new Uint8Array(0), true);
  }
}

/**
 * Encodes a whole message at once, terminator included (a copy; for tests
 * and small messages — stream big ones through {@linkcode DotStuffer}).
 */
export function dotStuff(data: Uint8Array): Uint8Array {
  return new DotStuffer(data.length * 2 + 5).push(data, true).slice();
}
