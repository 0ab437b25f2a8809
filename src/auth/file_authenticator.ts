/**
 * The password-file backend: users files ({@link UserStore}) checked through
 * the hashing pool, with a cache of recently verified credentials in front.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { AuthResult, PasswordAuthenticator } from "./authenticator.ts";
import type { CredentialCache } from "./credential_cache.ts";
import type { PasswordHasher } from "./hash_pool.ts";
import { type Argon2Params, needsRehash, PasswordHashError } from "./password_hash.ts";
import type { UserEntry, UserStore } from "./user_file.ts";
import { parseEmail } from "../mail/mod.ts";

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
  /** The configured argon2id parameters: of the dummy hash, and of upgraded hashes. */
  argon2: Argon2Params;
  /**
   * After a successful login against a hash that is not argon2id with
   * `argon2` (an imported `{SSHA}`, SHA-crypt, bcrypt... hash), replace it in
   * its users file. Default false.
   */
  rehashOnLogin?: boolean;
  /** Close `hasher` in {@link FileAuthenticator.close}. Default true. */
  ownsHasher?: boolean;
}

/**
 * Verifies passwords against the users files. Every check costs one argon2id
 * verification with the configured parameters, so response time does not
 * reveal who exists nor whose hash was imported: an unknown user is checked
 * against a dummy argon2id hash, and a user whose stored hash is anything
 * else (a cheap `{SSHA}`, SHA-crypt or bcrypt import, or argon2 with other
 * parameters) has the dummy verified alongside the real check.
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
  readonly #rehashOnLogin: boolean;
  /** Users files a rehash could not be written to (warned about once each). */
  readonly #unwritable = new Set<string>();
  #dummy: Promise<string> | null = null;

  /** Creates the backend; the dummy hash is made on first need. */
  constructor(options: FileAuthenticatorOptions) {
    this.#store = options.store;
    this.#hasher = options.hasher;
    this.#cache = options.cache;
    this.#allowPlaintext = options.allowPlaintext;
    this.#argon2 = options.argon2;
    this.#ownsHasher = options.ownsHasher ?? true;
    this.#rehashOnLogin = options.rehashOnLogin ?? false;
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

  /**
   * Checks `password` against `stored`; when `stored` is not a current
   * argon2id hash, the dummy argon2id runs alongside (in the pool, so it
   * queues like a real check), and the answer comes when both are done.
   */
  async #verifyPadded(password: string, stored: string): Promise<boolean> {
    if (!needsRehash(stored, this.#argon2)) {
      return await this.#hasher.verify(password, stored, this.#allowPlaintext);
    }
    const [real, pad] = await Promise.allSettled([
      this.#hasher.verify(password, stored, this.#allowPlaintext),
      this.#verifyDummy(password),
    ]);
    if (real.status === "rejected") throw real.reason;
    if (pad.status === "rejected") throw pad.reason;
    return real.value;
  }

  /** Replaces a weak stored hash after a successful login; never fails the login. */
  async #upgrade(entry: UserEntry, password: string): Promise<void> {
    const logger = getLogger(["relay", "auth"]);
    try {
      const hash = await this.#hasher.hash(password, this.#argon2);
      if (await this.#store.upgradeHash(entry, hash)) {
        this.#unwritable.delete(entry.file);
        this.#cache?.remember(entry.email, password, hash);
        logger.info("rehashed {email}'s {scheme} password as argon2id in {file}", {
          email: entry.email,
          scheme: entry.scheme,
          file: entry.file,
        });
      }
    } catch (error) {
      const properties = {
        email: entry.email,
        file: entry.file,
        error: error instanceof Error ? error.message : String(error),
      };
      const message = "cannot rehash {email}'s password in {file}: {error}";
      if (this.#unwritable.has(entry.file)) logger.debug(message, properties);
      else logger.warn(message + " (further failures for this file at debug)", properties);
      this.#unwritable.add(entry.file);
    }
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
      const ok = await this.#verifyPadded(password, entry.hash);
      if (!ok) return { ok: false, reason: "invalid_credentials", detail: "wrong password" };
      this.#cache?.remember(entry.email, password, entry.hash);
      if (this.#rehashOnLogin && needsRehash(entry.hash, this.#argon2)) {
        await this.#upgrade(entry, password);
      }
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
