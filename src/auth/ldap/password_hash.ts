/**
 * Salted SHA `userPassword` values (`{SSHA}`, `{SSHA256}`, `{SSHA512}`) as
 * OpenLDAP (core, and the `pw-sha2` module) and 389 DS verify them:
 * `{SCHEME}` + base64(digest(password ‖ salt) ‖ salt). The directory checks
 * these on bind; the relay only makes them, so no plaintext is ever stored.
 *
 * @module
 */
import { createHash, getRandomValues } from "node:crypto";
import { Buffer } from "node:buffer";

/** The salted SHA schemes the admin commands can write. */
export type SaltedShaScheme = "SSHA" | "SSHA256" | "SSHA512";

const DIGESTS: Record<SaltedShaScheme, { algorithm: string; length: number }> = {
  SSHA: { algorithm: "sha1", length: 20 },
  SSHA256: { algorithm: "sha256", length: 32 },
  SSHA512: { algorithm: "sha512", length: 64 },
};

/**
 * Hashes `password` as `{scheme}base64(digest(password ‖ salt) ‖ salt)` with
 * a fresh 16-byte salt (or the given one, for tests).
 *
 * @example
 * ```ts
 * const stored = hashSaltedSha("SSHA512", "s3cret"); // "{SSHA512}..."
 * ```
 */
export function hashSaltedSha(
  scheme: SaltedShaScheme,
  password: string,
  salt: Uint8Array = getRandomValues(new Uint8Array(16)),
): string {
  const digest = createHash(DIGESTS[scheme].algorithm)
    .update(Buffer.from(password, "utf8"))
    .update(salt)
    .digest();
  return `{${scheme}}${Buffer.concat([digest, salt]).toString("base64")}`;
}

/**
 * Checks `password` against a `{SSHA}`/`{SSHA256}`/`{SSHA512}` value (used by
 * tests and diagnostics; the directory does the real check on bind). Returns
 * `false` for other schemes.
 */
export function verifySaltedSha(stored: string, password: string): boolean {
  const match = /^\{(SSHA|SSHA256|SSHA512)\}([A-Za-z0-9+/=]+)$/i.exec(stored);
  if (!match) return false;
  const scheme = match[1].toUpperCase() as SaltedShaScheme;
  const raw = Buffer.from(match[2], "base64");
  const { length } = DIGESTS[scheme];
  if (raw.length <= length) return false;
  const again = hashSaltedSha(scheme, password, raw.subarray(length));
  return again === `{${scheme}}${raw.toString("base64")}`;
}
