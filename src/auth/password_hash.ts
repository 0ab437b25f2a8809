/**
 * Password hashing and verification with Dovecot-style `{SCHEME}` prefixes.
 *
 * New hashes are `{ARGON2ID}` in the PHC string format. Verification also
 * accepts hashes imported from other systems: `{ARGON2I}`, `{SSHA}`,
 * `{SSHA256}`, `{SSHA512}` (optionally `.HEX`), `{SHA256-CRYPT}`,
 * `{SHA512-CRYPT}`, `{BLF-CRYPT}`, `{CRYPT}` (for `$5$`, `$6$`, `$2y$`), and
 * `{PLAIN}` / `{CLEARTEXT}` when plain text is explicitly allowed. A value
 * without `{SCHEME}` is recognised by its `$id$` prefix; anything else is
 * plain text.
 *
 * These functions run on the calling thread: argon2id blocks it for as long
 * as its parameters say (~100 ms with the defaults). Servers go through
 * {@link ./hash_pool.ts}.
 *
 * @example Hash a new password and check it
 * ```ts
 * import { hashPassword, verifyPassword } from "./password_hash.ts";
 *
 * const stored = await hashPassword("s3cret", { memoryKib: 19456, iterations: 2, parallelism: 1 });
 * await verifyPassword("s3cret", stored, { allowPlaintext: false }); // true
 * ```
 *
 * @module
 */
import { argon2i, argon2id, bcrypt } from "hash-wasm";
import { createHash, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { parseShaCrypt, shaCryptVerify } from "./sha_crypt.ts";

/** Cost parameters for new argon2id hashes. */
export interface Argon2Params {
  /** Memory in KiB (`m=`). */
  memoryKib: number;
  /** Passes over memory (`t=`). */
  iterations: number;
  /** Lanes (`p=`). */
  parallelism: number;
}

/** Options for {@link verifyPassword}. */
export interface VerifyOptions {
  /** Accept `{PLAIN}`, `{CLEARTEXT}` and bare values (development only). */
  allowPlaintext: boolean;
}

/**
 * A stored hash that cannot be used: unknown scheme, malformed value, or
 * plain text while plain text is not allowed. Its message never contains the
 * stored value or a password.
 */
export class PasswordHashError extends Error {
  /** Builds the error; `message` must not contain secrets. */
  constructor(message: string) {
    super(message);
    this.name = "PasswordHashError";
  }
}

/** The schemes {@link verifyPassword} understands. */
export const SUPPORTED_SCHEMES: readonly string[] = [
  "ARGON2ID",
  "ARGON2I",
  "SSHA",
  "SSHA256",
  "SSHA512",
  "SHA256-CRYPT",
  "SHA512-CRYPT",
  "BLF-CRYPT",
  "CRYPT",
  "PLAIN",
  "CLEARTEXT",
];

/** Passwords longer than this (in UTF-8 bytes) never verify: bounds the work per attempt. */
export const MAX_PASSWORD_BYTES = 4096;

/** A stored value split into scheme and payload. */
export interface ParsedScheme {
  /** Upper-case scheme name without braces or encoding suffix, e.g. `SHA512-CRYPT`. */
  scheme: string;
  /** Dovecot's encoding suffix (`{SSHA.HEX}`); `null` when none was given. */
  encoding: "base64" | "hex" | null;
  /** The value after the `{SCHEME}` prefix (the whole value when there was none). */
  value: string;
  /** Whether the value carried a `{SCHEME}` prefix. */
  explicit: boolean;
}

const SCHEME_PREFIX = /^\{([A-Za-z0-9_-]+)(?:\.([A-Za-z0-9]+))?\}/;
const CRYPT_PREFIX = /^\$[A-Za-z0-9]{1,10}\$/;

/**
 * Splits a stored password value into its scheme and payload. Without a
 * `{SCHEME}` prefix, `$argon2id$`, `$argon2i$`, `$6$`, `$5$` and
 * `$2a$`/`$2b$`/`$2y$` name their scheme, any other `$id$` is `CRYPT` (and
 * fails as unsupported when verified), and everything else is `PLAIN`.
 *
 * @throws {PasswordHashError} for an unknown encoding suffix
 */
export function parseScheme(stored: string): ParsedScheme {
  const match = SCHEME_PREFIX.exec(stored);
  if (match !== null) {
    const suffix = match[2]?.toUpperCase();
    let encoding: ParsedScheme["encoding"] = null;
    if (suffix === "HEX") encoding = "hex";
    else if (suffix === "B64" || suffix === "BASE64") encoding = "base64";
    else if (suffix !== undefined) {
      throw new PasswordHashError(`unknown password encoding suffix .${suffix}`);
    }
    return {
      scheme: match[1].toUpperCase(),
      encoding,
      value: stored.slice(match[0].length),
      explicit: true,
    };
  }
  return {
    scheme: schemeFromPrefix(stored) ?? "PLAIN",
    encoding: null,
    value: stored,
    explicit: false,
  };
}

/** The scheme a bare `$id$...` value implies, or `null` for none. */
function schemeFromPrefix(value: string): string | null {
  if (value.startsWith("$argon2id$")) return "ARGON2ID";
  if (value.startsWith("$argon2i$")) return "ARGON2I";
  if (value.startsWith("$6$")) return "SHA512-CRYPT";
  if (value.startsWith("$5$")) return "SHA256-CRYPT";
  if (/^\$2[aby]\$/.test(value)) return "BLF-CRYPT";
  if (CRYPT_PREFIX.test(value)) return "CRYPT";
  return null;
}

/** Whether a parsed scheme stores the password itself. */
export function isPlaintextScheme(scheme: string): boolean {
  return scheme === "PLAIN" || scheme === "CLEARTEXT";
}

/** Reads the argon2 parameters out of the config's `auth.argon2` table. */
export function argon2ParamsFromConfig(
  argon2: { memory_kib: number; iterations: number; parallelism: number },
): Argon2Params {
  return {
    memoryKib: argon2.memory_kib,
    iterations: argon2.iterations,
    parallelism: argon2.parallelism,
  };
}

const encoder = new TextEncoder();

/** A stored hash, checked and ready to compare against. */
type Checker = (password: Uint8Array) => Promise<boolean>;

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeBase64(text: string, what: string): Uint8Array {
  if (!B64.test(text)) throw new PasswordHashError(`malformed ${what}: not base64`);
  return new Uint8Array(Buffer.from(text, "base64"));
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const ARGON2_PHC =
  /^\$(argon2id|argon2i)\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** Limits on stored argon2 parameters, so a bad file cannot make a worker allocate gigabytes. */
const ARGON2_MAX_MEMORY_KIB = 4_194_304;
const ARGON2_MAX_ITERATIONS = 1000;

function argon2Checker(scheme: string, value: string): Checker {
  const match = ARGON2_PHC.exec(value);
  if (match === null) throw new PasswordHashError(`malformed {${scheme}} hash`);
  const [, type, version, m, t, p, salt64, hash64] = match;
  if (type.toUpperCase() !== scheme) {
    throw new PasswordHashError(`{${scheme}} hash holds a ${type} string`);
  }
  if (version !== "19") throw new PasswordHashError(`unsupported argon2 version v=${version}`);
  const memorySize = Number(m);
  const iterations = Number(t);
  const parallelism = Number(p);
  if (
    parallelism < 1 || parallelism > 255 || iterations < 1 ||
    iterations > ARGON2_MAX_ITERATIONS || memorySize < 8 * parallelism ||
    memorySize > ARGON2_MAX_MEMORY_KIB
  ) {
    throw new PasswordHashError(`argon2 parameters out of range in {${scheme}} hash`);
  }
  const salt = decodeBase64(salt64, `{${scheme}} salt`);
  const expected = decodeBase64(hash64, `{${scheme}} hash`);
  if (salt.length < 8) throw new PasswordHashError(`{${scheme}} salt shorter than 8 bytes`);
  if (expected.length < 4 || expected.length > 1024) {
    throw new PasswordHashError(`{${scheme}} hash length out of range`);
  }
  const fn = type === "argon2id" ? argon2id : argon2i;
  return async (password) => {
    const actual = await fn({
      password,
      salt,
      iterations,
      parallelism,
      memorySize,
      hashLength: expected.length,
      outputType: "binary",
    });
    return constantTimeEqual(actual, expected);
  };
}

const SALTED_SHA: Record<string, { digest: string; length: number }> = {
  SSHA: { digest: "sha1", length: 20 },
  SSHA256: { digest: "sha256", length: 32 },
  SSHA512: { digest: "sha512", length: 64 },
};

function saltedShaChecker(parsed: ParsedScheme): Checker {
  const { digest, length } = SALTED_SHA[parsed.scheme];
  let raw: Uint8Array;
  if (parsed.encoding === "hex") {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(parsed.value)) {
      throw new PasswordHashError(`malformed {${parsed.scheme}.HEX} hash: not hex`);
    }
    raw = new Uint8Array(Buffer.from(parsed.value, "hex"));
  } else {
    raw = decodeBase64(parsed.value, `{${parsed.scheme}} hash`);
  }
  if (raw.length <= length) {
    throw new PasswordHashError(`{${parsed.scheme}} hash too short (no salt)`);
  }
  const expected = raw.subarray(0, length);
  const salt = raw.subarray(length);
  return (password) => {
    const actual = createHash(digest).update(password).update(salt).digest();
    return Promise.resolve(constantTimeEqual(new Uint8Array(actual), expected));
  };
}

function shaCryptChecker(scheme: string, value: string): Checker {
  const id = scheme === "SHA512-CRYPT" ? "6" : "5";
  const parts = parseShaCrypt(value);
  if (parts === null || parts.id !== id || parts.hash === "") {
    throw new PasswordHashError(`malformed {${scheme}} hash`);
  }
  return (password) => Promise.resolve(shaCryptVerify(password, value));
}

const BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BCRYPT = /^\$2[aby]\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;

/** Decodes bcrypt's 22-character salt (its own base-64 alphabet) into 16 bytes. */
function decodeBcryptSalt(text: string): Uint8Array {
  const out = new Uint8Array(16);
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (const ch of text) {
    acc = (acc << 6) | BCRYPT_ALPHABET.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n < 16) out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

function bcryptChecker(value: string): Checker {
  const match = BCRYPT.exec(value);
  if (match === null) throw new PasswordHashError("malformed {BLF-CRYPT} hash");
  const costFactor = Number(match[1]);
  if (costFactor < 4 || costFactor > 31) {
    throw new PasswordHashError("{BLF-CRYPT} cost out of range");
  }
  const salt = decodeBcryptSalt(match[2]);
  const expected = encoder.encode(match[3]);
  return async (password) => {
    // bcrypt only reads 72 bytes of key; hash-wasm refuses longer input instead of cutting it.
    const key = password.subarray(0, 72);
    if (key.length === 0) return false;
    const encoded = await bcrypt({ password: key, salt, costFactor, outputType: "encoded" });
    // Compare the hash part only: the version letter and salt padding bits may differ.
    return constantTimeEqual(encoder.encode(encoded.slice(-31)), expected);
  };
}

function plaintextChecker(parsed: ParsedScheme): Checker {
  if (parsed.encoding !== null) {
    throw new PasswordHashError(`encoding suffix not supported for {${parsed.scheme}}`);
  }
  // Compare digests so the comparison takes the same time whatever the lengths.
  const expected = createHash("sha256").update(parsed.value).digest();
  return (password) => {
    const actual = createHash("sha256").update(password).digest();
    return Promise.resolve(timingSafeEqual(actual, expected));
  };
}

/**
 * Checks a stored value and prepares its comparison. Plain text is allowed
 * here; {@link verifyPassword} applies the plain-text policy.
 */
function prepare(parsed: ParsedScheme): Checker {
  if (parsed.encoding !== null && !(parsed.scheme in SALTED_SHA)) {
    if (!isPlaintextScheme(parsed.scheme)) {
      throw new PasswordHashError(`encoding suffix not supported for {${parsed.scheme}}`);
    }
  }
  switch (parsed.scheme) {
    case "ARGON2ID":
    case "ARGON2I":
      return argon2Checker(parsed.scheme, parsed.value);
    case "SSHA":
    case "SSHA256":
    case "SSHA512":
      return saltedShaChecker(parsed);
    case "SHA256-CRYPT":
    case "SHA512-CRYPT":
      return shaCryptChecker(parsed.scheme, parsed.value);
    case "BLF-CRYPT":
      return bcryptChecker(parsed.value);
    case "CRYPT": {
      // crypt(3) picks the algorithm from the `$id$` prefix.
      const implied = schemeFromPrefix(parsed.value);
      if (implied === null || implied === "CRYPT" || implied.startsWith("ARGON2")) {
        const id = CRYPT_PREFIX.exec(parsed.value)?.[0] ?? "(DES)";
        throw new PasswordHashError(`unsupported crypt(3) hash type ${id}`);
      }
      return prepare({ ...parsed, scheme: implied });
    }
    case "PLAIN":
    case "CLEARTEXT":
      return plaintextChecker(parsed);
    default:
      throw new PasswordHashError(`unknown password scheme {${parsed.scheme}}`);
  }
}

/**
 * Checks that a stored value is usable, without a password: a known scheme
 * and a well-formed payload. Returns `null` when it is, else what is wrong
 * (never containing the value). Plain text counts as usable here.
 */
export function checkStoredHash(stored: string): string | null {
  try {
    prepare(parseScheme(stored));
    return null;
  } catch (error) {
    if (error instanceof PasswordHashError) return error.message;
    throw error;
  }
}

/**
 * Hashes a new password as `{ARGON2ID}$argon2id$v=19$m=..,t=..,p=..$salt$hash`
 * with a 16-byte random salt and a 32-byte hash.
 *
 * @throws {RangeError} for empty or over-long passwords and invalid parameters
 */
export async function hashPassword(password: string, params: Argon2Params): Promise<string> {
  const bytes = encoder.encode(password);
  if (bytes.length === 0) throw new RangeError("empty password");
  if (bytes.length > MAX_PASSWORD_BYTES) {
    throw new RangeError(`password longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  const { memoryKib, iterations, parallelism } = params;
  if (
    !Number.isInteger(memoryKib) || !Number.isInteger(iterations) ||
    !Number.isInteger(parallelism) || parallelism < 1 || iterations < 1 ||
    memoryKib < 8 * parallelism || memoryKib > ARGON2_MAX_MEMORY_KIB
  ) {
    throw new RangeError("invalid argon2 parameters");
  }
  const encoded = await argon2id({
    password: bytes,
    salt: crypto.getRandomValues(new Uint8Array(16)),
    iterations,
    parallelism,
    memorySize: memoryKib,
    hashLength: 32,
    outputType: "encoded",
  });
  return `{ARGON2ID}${encoded}`;
}

/**
 * Whether `stored` is anything but an `{ARGON2ID}` hash with exactly
 * `params`: checking it does not cost what a check against a current hash
 * costs (so the file backend pads it), and `auth.file.rehash_on_login`
 * replaces it. Unusable values count as needing a rehash.
 */
export function needsRehash(stored: string, params: Argon2Params): boolean {
  let parsed: ParsedScheme;
  try {
    parsed = parseScheme(stored);
  } catch {
    return true;
  }
  if (parsed.scheme !== "ARGON2ID" || parsed.encoding !== null) return true;
  const match = ARGON2_PHC.exec(parsed.value);
  if (match === null) return true;
  const [, type, version, m, t, p] = match;
  return type !== "argon2id" || version !== "19" || Number(m) !== params.memoryKib ||
    Number(t) !== params.iterations || Number(p) !== params.parallelism;
}

/**
 * Checks `password` against a stored value in constant time. Resolves
 * `false` for a wrong password (and for one over {@link MAX_PASSWORD_BYTES}).
 *
 * @throws {PasswordHashError} when the stored value cannot be used: unknown
 * scheme, malformed, or plain text while `allowPlaintext` is off
 */
export async function verifyPassword(
  password: string,
  stored: string,
  options: VerifyOptions,
): Promise<boolean> {
  const parsed = parseScheme(stored);
  if (isPlaintextScheme(parsed.scheme) && !options.allowPlaintext) {
    throw new PasswordHashError(
      "plain-text password entries are refused (auth.file.allow_plaintext is off)",
    );
  }
  const check = prepare(parsed);
  const bytes = encoder.encode(password);
  if (bytes.length > MAX_PASSWORD_BYTES) return false;
  return await check(bytes);
}
