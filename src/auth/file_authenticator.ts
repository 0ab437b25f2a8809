/**
 * The password-file backend: users files ({@link UserStore}) checked through
 * the hashing pool, with a cache of recently verified credentials in front.
 *
 * @module
 */
import { parseEmail } from "../mail/mod.ts";
import type { AuthResult, PasswordAuthenticator } from "./authenticator.ts";
import type { CredentialCache } from "./credential_cache.ts";
import type { PasswordHasher } from "./hash_pool.ts";
import { type Argon2Params, PasswordHashError } from "./password_hash.ts";
import type { UserStore } from "./user_file.ts";

/** Options for {@link FileAuthenticator}. */
export interface FileAuthenticatorOptions {
  /** Where users come from. */
  store: UserStore;
  /** Runs the hash computations (normally a {@link HashPool}). */
  hasher: PasswordHasher;
  /** Recently verified credentials; `null` for none. */
  cache: CredentialCache | null;
  /** Accept plain-text entries (development only). */
  allowPlaintext: boolean;
  /** Parameters of the dummy hash verified for unknown users (the configured ones). */
  argon2: Argon2Params;
  /** Close `hasher` in {@link FileAuthenticator.close}. Default true. */
  ownsHasher?: boolean;
}

/**
 * Verifies passwords against the users files. An unknown user still costs a
 * verification (against a dummy argon2id hash made with the configured
 * parameters), so response time does not reveal who exists.
 */
export class FileAuthenticator implements PasswordAuthenticator {
  /** Backend name for logs and the audit trail. */
  readonly name = "file";
  readonly #store: UserStore;
  readonly #hasher: PasswordHasher;
  readonly #cache: CredentialCache | null;
  readonly #allowPlaintext: boolean;
  readonly #argon2: Argon2Params;
  readonly #ownsHasher: boolean;
  #dummy: Promise<string> | null = null;

  /** Creates the backend; the dummy hash is made on first need. */
  constructor(options: FileAuthenticatorOptions) {
    this.#store = options.store;
    this.#hasher = options.hasher;
    this.#cache = options.cache;
    this.#allowPlaintext = options.allowPlaintext;
    this.#argon2 = options.argon2;
    this.#ownsHasher = options.ownsHasher ?? true;
  }

  /** Spends the time a real verification would, for a user that does not exist. */
  async #verifyDummy(password: string): Promise<void> {
    if (this.#dummy === null) {
      const secret = crypto.getRandomValues(new Uint8Array(24)).toBase64();
      const dummy = this.#hasher.hash(secret, this.#argon2);
      this.#dummy = dummy;
      // A failed attempt (pool closed, crash) must not stick.
      dummy.catch(() => {
        if (this.#dummy === dummy) this.#dummy = null;
      });
    }
    await this.#hasher.verify(password, await this.#dummy, false);
  }

  /** Checks a password; see {@link PasswordAuthenticator.verifyPassword}. */
  async verifyPassword(username: string, password: string): Promise<AuthResult> {
    const address = parseEmail(username);
    if (address === null) {
      return {
        ok: false,
        reason: "invalid_credentials",
        detail: "user name is not an email address",
      };
    }
    try {
      const entry = await this.#store.lookup(address.canonical);
      if (entry === null) {
        await this.#verifyDummy(password);
        return { ok: false, reason: "invalid_credentials", detail: "unknown user" };
      }
      const success: AuthResult = {
        ok: true,
        email: entry.email,
        domain: entry.domain,
        backend: this.name,
      };
      if (this.#cache?.has(entry.email, password, entry.hash)) return success;
      const ok = await this.#hasher.verify(password, entry.hash, this.#allowPlaintext);
      if (!ok) return { ok: false, reason: "invalid_credentials", detail: "wrong password" };
      this.#cache?.remember(entry.email, password, entry.hash);
      return success;
    } catch (error) {
      if (error instanceof PasswordHashError) {
        // The stored value is unusable: retrying will not help.
        return {
          ok: false,
          reason: "invalid_credentials",
          detail: `stored hash unusable: ${error.message}`,
        };
      }
      const message = error instanceof Error ? error.message : "unknown error";
      return { ok: false, reason: "temporary_failure", detail: `file backend: ${message}` };
    }
  }

  /** Closes the hasher (when owned) and forgets cached credentials. */
  async close(): Promise<void> {
    this.#cache?.clear();
    if (this.#ownsHasher) await this.#hasher.close();
  }
}
