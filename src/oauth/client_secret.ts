/**
 * Client-secret hashes in the Dovecot `{SCHEME}` style the password files
 * use (`{ARGON2ID}$argon2id$v=19$m=...`, `{SSHA512}...`), checked by the
 * auth module's password hashing. Verified secrets are
 * remembered for a few minutes under a keyed hash, since introspection
 * callers authenticate on every request and argon2id costs ~100 ms.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
import { verifyPassword } from "../auth/password_hash.ts";

/** Verifies a secret against a stored hash; `false` for unknown schemes. */
export type SecretVerifier = (secret: string, hash: string) => Promise<boolean>;

/**
 * Verifies a client secret with the password-file schemes (`{ARGON2ID}`,
 * `{SSHA512}`, `{SHA512-CRYPT}`, ... see `SUPPORTED_SCHEMES` in auth);
 * plain text is never accepted. An unusable hash verifies nothing.
 */
export async function verifySecretHash(secret: string, hash: string): Promise<boolean> {
  try {
    return await verifyPassword(secret, hash, { allowPlaintext: false });
  } catch {
    return false;
  }
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
