/**
 * Client-secret hashes in the Dovecot `{SCHEME}` style the password files
 * use: `{ARGON2ID}$argon2id$v=19$m=...` (or a bare `$argon2id$...`),
 * `{SSHA512}`, `{SSHA256}` (base64 of digest + salt). Verified secrets are
 * remembered for a few minutes under a keyed hash, since introspection
 * callers authenticate on every request and argon2id costs ~100 ms.
 *
 * @module
 */
import { argon2Verify } from "hash-wasm";
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Verifies a secret against a stored hash; `false` for unknown schemes. */
export type SecretVerifier = (secret: string, hash: string) => Promise<boolean>;

const SALTED_SHA: Record<string, { digest: "sha256" | "sha512"; length: number }> = {
  SSHA256: { digest: "sha256", length: 32 },
  SSHA512: { digest: "sha512", length: 64 },
};

/** Verifies `{ARGON2ID}` / `{ARGON2I}` / bare `$argon2...`, `{SSHA256}` and `{SSHA512}` hashes. */
export async function verifySecretHash(secret: string, hash: string): Promise<boolean> {
  const match = /^\{([A-Z0-9-]+)\}(.*)$/s.exec(hash);
  const scheme = match ? match[1] : hash.startsWith("$argon2") ? "ARGON2" : "";
  const body = match ? match[2] : hash;
  if (scheme.startsWith("ARGON2")) {
    try {
      return await argon2Verify({ password: secret, hash: body });
    } catch {
      return false;
    }
  }
  const salted = SALTED_SHA[scheme];
  if (salted) {
    const raw = Buffer.from(body, "base64");
    if (raw.length <= salted.length) return false;
    const digest = raw.subarray(0, salted.length);
    const salt = raw.subarray(salted.length);
    const actual = createHash(salted.digest).update(secret).update(salt).digest();
    return timingSafeEqual(actual, digest);
  }
  return false;
}

/** Makes an `{SSHA512}` hash (for tests and the CLI). */
export function hashSecretSsha512(secret: string): string {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const digest = createHash("sha512").update(secret).update(salt).digest();
  return "{SSHA512}" + Buffer.concat([digest, salt]).toString("base64");
}

/** Wraps a verifier with a short-lived cache of successes (never of failures). */
export function cachedSecretVerifier(
  verify: SecretVerifier,
  options: { ttlMs?: number; size?: number; now?: () => number } = {},
): SecretVerifier {
  const ttl = options.ttlMs ?? 300_000;
  const size = options.size ?? 1000;
  const now = options.now ?? Date.now;
  const key = crypto.getRandomValues(new Uint8Array(32));
  const verified = new Map<string, number>();
  return async (secret, hash) => {
    const id = createHmac("sha256", key).update(hash).update("\0").update(secret).digest("base64");
    const until = verified.get(id);
    if (until !== undefined && until > now()) return true;
    verified.delete(id);
    const ok = await verify(secret, hash);
    if (ok && ttl > 0) {
      if (verified.size >= size) verified.delete(verified.keys().next().value!);
      verified.set(id, now() + ttl);
    }
    return ok;
  };
}
