/**
 * Pieces the login lockouts ({@link "./lockout.ts"}) share with their callers:
 * keyed fingerprints of wrong passwords (a client retrying the same stale
 * password makes one guess, not many) and the shapes of the OAuth server's
 * `rateLimit` and `audit` hooks (policy does not import OAuth). The failed-login
 * limits themselves are the lockout model in `lockout.ts`.
 *
 * @module
 */
import { createHmac, randomBytes } from "node:crypto";

/**
 * Makes keyed fingerprints of credentials for the identical-password rule:
 * HMAC-SHA256 over `user NUL password` under a secret key, truncated to 128
 * bits. Without the key a fingerprint says nothing about the password.
 */
export class CredentialFingerprinter {
  readonly #key: Uint8Array;

  /** @param key the HMAC key, shared by all nodes; default 32 random bytes (one node) */
  constructor(key: Uint8Array = new Uint8Array(randomBytes(32))) {
    if (key.length < 16) throw new RangeError("the fingerprint key must be at least 16 bytes");
    this.#key = key;
  }

  /** The fingerprint of `password` for `user` (user compared case-insensitively). */
  fingerprint(user: string, password: string): string {
    return createHmac("sha256", this.#key).update(user.trim().toLowerCase()).update("\0")
      .update(password).digest().subarray(0, 16).toString("base64url");
  }
}

/**
 * A login-page attempt or a client registration to admit; the shape of the
 * OAuth server's `rateLimit` hook argument (policy does not import OAuth).
 */
export interface LoginRequest {
  /** `login`: a password attempt on the login page; `register`: dynamic registration. */
  action: "login" | "register";
  /** The client address. */
  ip: string;
  /** The email typed (lower-cased), or "" when there is none. */
  email: string;
}

/** Answers whether a {@link LoginRequest} may go ahead (`false`: too many). */
export type LoginLimitHook = (request: LoginRequest) => Promise<boolean>;

/** Receives security events, as the OAuth server's `audit` hook does. */
export type SecurityEventHook = (event: Record<string, unknown>) => void;
