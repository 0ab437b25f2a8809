/**
 * SHA-crypt (`$5$` SHA256-CRYPT and `$6$` SHA512-CRYPT), the password hashes
 * of glibc's `crypt(3)` and Dovecot's `{SHA256-CRYPT}` / `{SHA512-CRYPT}`,
 * implemented from Ulrich Drepper's specification
 * ("Unix crypt using SHA-256 and SHA-512", 2007/2008).
 *
 * @example Verify a password against an `/etc/shadow` style hash
 * ```ts
 * import { shaCryptVerify } from "./sha_crypt.ts";
 *
 * const ok = shaCryptVerify(
 *   "Hello world!",
 *   "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
 * );
 * ```
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** The crypt(3) base-64 alphabet (not RFC 4648). */
const ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;

interface Variant {
  /** The node:crypto digest name. */
  digest: "sha256" | "sha512";
  /** Digest length in bytes. */
  length: number;
  /** Byte triples (most significant first) in output order, per the spec. */
  order: number[][];
  /** Trailing bytes that do not fill a triple, and how many characters they make. */
  tail: { bytes: number[]; chars: number };
  /** Characters of the encoded hash. */
  encodedLength: number;
}

const SHA256_VARIANT: Variant = {
  digest: "sha256",
  length: 32,
  order: [
    [0, 10, 20],
    [21, 1, 11],
    [12, 22, 2],
    [3, 13, 23],
    [24, 4, 14],
    [15, 25, 5],
    [6, 16, 26],
    [27, 7, 17],
    [18, 28, 8],
    [9, 19, 29],
  ],
  // b64_from_24bit(0, final[31], final[30], 3)
  tail: { bytes: [31, 30], chars: 3 },
  encodedLength: 43,
};

const SHA512_VARIANT: Variant = {
  digest: "sha512",
  length: 64,
  order: [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
  ],
  // b64_from_24bit(0, 0, final[63], 2)
  tail: { bytes: [63], chars: 2 },
  encodedLength: 86,
};

/** The parts of a SHA-crypt string. */
export interface ShaCryptParts {
  /** `5` (SHA-256) or `6` (SHA-512). */
  id: "5" | "6";
  /** Rounds actually used (clamped to the spec's range). */
  rounds: number;
  /** Whether the string named its rounds (`rounds=N$`); then the output names them too. */
  customRounds: boolean;
  /** The salt, at most 16 characters. */
  salt: string;
  /** The encoded hash (43 or 86 characters), or `""` for a bare salt string. */
  hash: string;
}

const SHA_CRYPT_PATTERN = /^\$([56])\$(?:rounds=(\d{1,10})\$)?([^$:\n]*)(?:\$([./0-9A-Za-z]*))?$/;

/**
 * Splits a `$5$` / `$6$` string (`$6$[rounds=N$]salt[$hash]`) into its
 * parts. Returns `null` when it is not SHA-crypt or the hash part has the
 * wrong length or characters.
 */
export function parseShaCrypt(value: string): ShaCryptParts | null {
  const match = SHA_CRYPT_PATTERN.exec(value);
  if (match === null) return null;
  const id = match[1] as "5" | "6";
  const customRounds = match[2] !== undefined;
  const requested = customRounds ? Number(match[2]) : ROUNDS_DEFAULT;
  const rounds = Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, requested));
  const hash = match[4] ?? "";
  const variant = id === "5" ? SHA256_VARIANT : SHA512_VARIANT;
  if (hash !== "" && hash.length !== variant.encodedLength) return null;
  // The spec uses at most 16 salt characters; longer salts are cut, not refused.
  const salt = match[3].slice(0, SALT_MAX);
  return { id, rounds, customRounds, salt, hash };
}

function encode64(bytes: Uint8Array, variant: Variant): string {
  let out = "";
  const put = (b2: number, b1: number, b0: number, chars: number) => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let i = 0; i < chars; i++) {
      out += ITOA64[w & 0x3f];
      w >>>= 6;
    }
  };
  for (const [a, b, c] of variant.order) put(bytes[a], bytes[b], bytes[c], 4);
  const tail = variant.tail.bytes.map((i) => bytes[i]);
  if (tail.length === 2) put(0, tail[0], tail[1], variant.tail.chars);
  else put(0, 0, tail[0], variant.tail.chars);
  return out;
}

/** `count` bytes made of `block` repeated (the spec's P and S sequences). */
function repeatTo(block: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i += block.length) {
    out.set(block.subarray(0, Math.min(block.length, count - i)), i);
  }
  return out;
}

function computeDigest(
  variant: Variant,
  password: Uint8Array,
  salt: Uint8Array,
  rounds: number,
): Uint8Array {
  const digest = (...parts: Uint8Array[]): Uint8Array => {
    const h = createHash(variant.digest);
    for (const part of parts) h.update(part);
    return new Uint8Array(h.digest());
  };
  // Steps 4-8: digest B = H(P S P).
  const b = digest(password, salt, password);
  // Steps 1-3, 9-12: digest A.
  const a = createHash(variant.digest);
  a.update(password);
  a.update(salt);
  a.update(repeatTo(b, password.length));
  for (let n = password.length; n > 0; n >>>= 1) a.update((n & 1) !== 0 ? b : password);
  let c = new Uint8Array(a.digest());
  // Steps 13-16: P sequence from digest DP = H(P repeated |P| times).
  const dp = createHash(variant.digest);
  for (let i = 0; i < password.length; i++) dp.update(password);
  const p = repeatTo(new Uint8Array(dp.digest()), password.length);
  // Steps 17-20: S sequence from digest DS = H(S repeated 16 + A[0] times).
  const ds = createHash(variant.digest);
  for (let i = 0; i < 16 + c[0]; i++) ds.update(salt);
  const s = repeatTo(new Uint8Array(ds.digest()), salt.length);
  // Step 21: the rounds.
  for (let i = 0; i < rounds; i++) {
    const h = createHash(variant.digest);
    h.update((i & 1) !== 0 ? p : c);
    if (i % 3 !== 0) h.update(s);
    if (i % 7 !== 0) h.update(p);
    h.update((i & 1) !== 0 ? c : p);
    c = new Uint8Array(h.digest());
  }
  return c;
}

/**
 * Computes a SHA-crypt string for `password` with the id, rounds and salt of
 * `setting` (a full hash or just `$6$[rounds=N$]salt`), like `crypt(3)`.
 * A string password is encoded as UTF-8.
 *
 * @throws {Error} when `setting` is not a SHA-crypt string
 */
export function shaCrypt(password: string | Uint8Array, setting: string): string {
  const parts = parseShaCrypt(setting);
  if (parts === null) throw new Error("not a SHA-crypt ($5$/$6$) string");
  const variant = parts.id === "5" ? SHA256_VARIANT : SHA512_VARIANT;
  const salt = new TextEncoder().encode(parts.salt);
  const key = typeof password === "string" ? new TextEncoder().encode(password) : password;
  const digest = computeDigest(variant, key, salt, parts.rounds);
  const rounds = parts.customRounds ? `rounds=${parts.rounds}$` : "";
  return `$${parts.id}$${rounds}${parts.salt}$${encode64(digest, variant)}`;
}

/**
 * Checks `password` against a stored `$5$` / `$6$` hash, comparing in
 * constant time.
 *
 * @throws {Error} when `stored` is not a complete SHA-crypt hash
 */
export function shaCryptVerify(password: string | Uint8Array, stored: string): boolean {
  const parts = parseShaCrypt(stored);
  if (parts === null || parts.hash === "") throw new Error("malformed SHA-crypt hash");
  const computed = shaCrypt(password, stored);
  const expected = new TextEncoder().encode(parts.hash);
  const actual = new TextEncoder().encode(computed.slice(computed.lastIndexOf("$") + 1));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
