/**
 * Splits a message into its header block and body while it streams in,
 * holding at most `limit` bytes of header: the session reads the From:
 * fields from it for the policy, the DKIM signer signs it. Bytes are CRLF
 * terminated, as DATA delivers them.
 *
 * @module
 */

/** Default most bytes of header block held (larger: {@link HeaderBlockReader.overflow}). */
export const HEADER_BLOCK_LIMIT = 64 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const decoder = new TextDecoder();

/** Collects the header block of a message fed in chunks. */
export class HeaderBlockReader {
  readonly #limit: number;
  #buffer: Uint8Array;
  #length = 0;
  /** Offset of the empty line that ends the header block, once seen. */
  #end = -1;
  #overflow = false;
  #atLineStart = true;
  #crAtLineStart = false;

  /** @param limit most bytes of header block held */
  constructor(limit: number = HEADER_BLOCK_LIMIT) {
    this.#limit = limit;
    this.#buffer = new Uint8Array(Math.min(limit + 2, 4096));
  }

  /** The empty line has been seen: the rest is body. */
  get complete(): boolean {
    return this.#end >= 0;
  }

  /** The header block was longer than the limit; nothing of it is held any more. */
  get overflow(): boolean {
    return this.#overflow;
  }

  /**
   * Feeds message bytes. Returns the part of `bytes` that is body (empty
   * while the header block goes on, everything once it has ended); `null`
   * once the header block overflowed.
   */
  push(bytes: Uint8Array): Uint8Array | null {
    if (this.#overflow) return null;
    if (this.#end >= 0) return bytes;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (this.#crAtLineStart) {
        this.#crAtLineStart = false;
        this.#atLineStart = false;
        if (b !== LF) continue;
        // The empty line: the header block ends with this chunk's byte i.
        if (!this.#append(bytes.subarray(0, i + 1))) return null;
        this.#end = this.#length - 2;
        return bytes.subarray(i + 1);
      }
      if (this.#atLineStart && b === CR) {
        this.#crAtLineStart = true;
        this.#atLineStart = false;
      } else this.#atLineStart = b === LF;
    }
    return this.#append(bytes) ? bytes.subarray(bytes.length) : null;
  }

  /** Holds `bytes`; past the limit, drops everything held and reports the overflow. */
  #append(bytes: Uint8Array): boolean {
    if (this.#length + bytes.length > this.#limit + 2) {
      this.#overflow = true;
      this.#buffer = new Uint8Array(0);
      this.#length = 0;
      return false;
    }
    if (this.#length + bytes.length > this.#buffer.length) {
      const grown = new Uint8Array(
        Math.min(this.#limit + 2, Math.max(this.#buffer.length * 2, this.#length + bytes.length)),
      );
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
    return true;
  }

  /**
   * The header block without the empty line (each field ends in CRLF); the
   * whole message when no empty line came. Empty after an overflow.
   */
  header(): Uint8Array {
    return this.#buffer.subarray(0, this.#end >= 0 ? this.#end : this.#length);
  }

  /** The bytes held: the header block and, when seen, the empty line after it. */
  raw(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }

  /** Unfolded values of every field named `name` (case-insensitive), in order. */
  fields(name: string): string[] {
    return headerFields(this.header(), name);
  }
}

/** Unfolded values of every field named `name` in a header block. */
export function headerFields(block: Uint8Array, name: string): string[] {
  const text = decoder.decode(block);
  const wanted = name.toLowerCase();
  const out: string[] = [];
  for (const field of text.split(/\r\n(?![ \t])/)) {
    const colon = field.indexOf(":");
    if (colon <= 0) continue;
    if (field.slice(0, colon).trim().toLowerCase() !== wanted) continue;
    out.push(field.slice(colon + 1).replace(/\r\n/g, "").trim());
  }
  return out;
}
