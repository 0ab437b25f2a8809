/**
 * What a message needs from the backend: 8BITMIME (RFC 6152) when its bytes
 * are not all 7-bit, SMTPUTF8 (RFC 6531) when it was submitted with SMTPUTF8
 * and really carries UTF-8 in its addresses or header. Like Postfix, an
 * SMTPUTF8 submission that is plain ASCII travels without the extension.
 *
 * @module
 */
import type { Envelope } from "./envelope.ts";

/** Extensions a message needs from the next hop. */
export interface MessageNeeds {
  /** Some byte is 0x80 or above. */
  eightBit: boolean;
  /** SMTPUTF8 was requested and an address or a header is not ASCII. */
  smtputf8: boolean;
}

/** Whether any byte of `data` is 0x80 or above. */
export function hasEightBitBytes(data: Uint8Array): boolean {
  // Four bytes at a time through a Uint32Array view when the data is aligned
  // (a BigUint64Array view allocates a BigInt per word: measured 0.8% of the
  // main thread with 1 KiB messages, this is a few times cheaper).
  const aligned = data.byteOffset % 4 === 0 ? data.length - (data.length % 4) : 0;
  if (aligned > 0) {
    const words = new Uint32Array(data.buffer, data.byteOffset, aligned / 4);
    for (let i = 0; i < words.length; i++) if ((words[i] & 0x80808080) !== 0) return true;
  }
  for (let i = aligned; i < data.length; i++) if (data[i] >= 0x80) return true;
  return false;
}

/** Length of the header block (up to and including the empty line), or all of `data`. */
export function headerLength(data: Uint8Array): number {
  for (let i = 0; i + 1 < data.length; i++) {
    if (data[i] !== 0x0a) continue;
    if (data[i + 1] === 0x0a) return i + 2;
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) return i + 3;
  }
  return data.length;
}

/** Whether a string has a character outside ASCII. */
export function isNonAscii(text: string): boolean {
  return /[^\p{ASCII}]/u.test(text);
}

/** Works out which extensions `data` (sent with `envelope`) needs. */
export function messageNeeds(envelope: Envelope, data: Uint8Array): MessageNeeds {
  const eightBit = hasEightBitBytes(data);
  const smtputf8 = envelope.smtputf8 === true &&
    ([envelope.from, ...envelope.recipients].some(isNonAscii) ||
      (eightBit && hasEightBitBytes(data.subarray(0, headerLength(data)))));
  return { eightBit, smtputf8 };
}
