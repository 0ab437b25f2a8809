/**
 * Authentication: who a client is. {@link createAuthenticator} builds the
 * backend chain named by `auth.backends`; the rest is exported for the CLI,
 * the OAuth login page and tests.
 *
 * @example
 * ```ts
 * import { createAuthenticator } from "./mod.ts";
 * import { parseConfig } from "../config/mod.ts";
 *
 * const auth = createAuthenticator(parseConfig({}));
 * const result = await auth.verifyPassword("alice@example.com", "s3cret");
 * await auth.close();
 * ```
 *
 * @module
 */
import { normalizeDomain, parseEmail } from "../mail/mod.ts";
import type { Config } from "../config/mod.ts";
import type { AuthResult, PasswordAuthenticator } from "./authenticator.ts";
import { CredentialCache } from "./credential_cache.ts";
import { FileAuthenticator } from "./file_authenticator.ts";
import { HashPool, type PasswordHasher } from "./hash_pool.ts";
import { argon2ParamsFromConfig } from "./password_hash.ts";
import { type UserFileProblem, UserStore } from "./user_file.ts";

export type {
  AuthFailureReason,
  AuthResult,
  BearerAuthenticator,
  BearerResult,
  PasswordAuthenticator,
} from "./authenticator.ts";
export { CredentialCache, type CredentialCacheOptions } from "./credential_cache.ts";
export { FileAuthenticator, type FileAuthenticatorOptions } from "./file_authenticator.ts";
export { HashPool, type HashPoolOptions, type PasswordHasher } from "./hash_pool.ts";
export { knownDomainCheck } from "./known_domains.ts";
export {
  type Argon2Params,
  argon2ParamsFromConfig,
  checkStoredHash,
  hashPassword,
  MAX_PASSWORD_BYTES,
  needsRehash,
  type ParsedScheme,
  parseScheme,
  PasswordHashError,
  SUPPORTED_SCHEMES,
  verifyPassword,
} from "./password_hash.ts";
export {
  type AddUserOptions,
  parseUserFile,
  type UserEntry,
  UserFileError,
  type UserFileProblem,
  UserStore,
  type UserStoreOptions,
} from "./user_file.ts";

/** Options for {@link createAuthenticator}. */
export interface CreateAuthenticatorOptions {
  /** Hasher to use instead of a new {@link HashPool} (tests); it is closed with the chain. */
  hasher?: PasswordHasher;
  /** Receives users-file problems; default: the `["relay","auth"]` logger. */
  report?: (problem: UserFileProblem) => void;
  /** Clock in milliseconds for the credential cache (tests). */
  now?: () => number;
  /**
   * Builders for backends that live elsewhere (`ldap`), so they can be wired
   * in without this module importing them.
   */
  backends?: Partial<Record<"ldap", (config: Config) => PasswordAuthenticator>>;
}

/** Builds the users-file store described by `config.auth.file`. */
export function createUserStore(
  config: Config,
  report?: (problem: UserFileProblem) => void,
): UserStore {
  return new UserStore({
    usersFile: config.auth.file.users,
    usersDir: config.auth.file.users_dir,
    allowPlaintext: config.auth.file.allow_plaintext,
    report,
  });
}

/**
 * Builds the authenticator for `config`: the backends of `auth.backends`
 * tried in order, behind the disabled-domain check.
 *
 * @throws {Error} when a backend is named that is not available
 */
export function createAuthenticator(
  config: Config,
  options: CreateAuthenticatorOptions = {},
): PasswordAuthenticator {
  const backends: PasswordAuthenticator[] = [];
  try {
    for (const name of config.auth.backends) {
      if (name === "file") {
        const cache = config.auth.cache_ttl_seconds > 0
          ? new CredentialCache({
            ttlMs: config.auth.cache_ttl_seconds * 1000,
            maxEntries: config.auth.cache_size,
            now: options.now,
          })
          : null;
        backends.push(
          new FileAuthenticator({
            store: createUserStore(config, options.report),
            hasher: options.hasher ?? new HashPool({ size: config.auth.workers }),
            cache,
            allowPlaintext: config.auth.file.allow_plaintext,
            argon2: argon2ParamsFromConfig(config.auth.argon2),
            rehashOnLogin: config.auth.file.rehash_on_login,
          }),
        );
      } else {
        const build = options.backends?.[name];
        if (build === undefined) {
          throw new Error(`${name.toUpperCase()} backend not available yet (auth.backends)`);
        }
        backends.push(build(config));
      }
    }
  } catch (error) {
    for (const backend of backends) void backend.close();
    throw error;
  }
  return new AuthenticatorChain(backends, config.domains.disabled);
}

/**
 * Tries backends in order: the first `ok` wins; `account_disabled` stops the
 * chain (the account exists and is locked); a `temporary_failure` is
 * remembered and returned when no backend says yes, so the client retries
 * rather than being told its password is wrong.
 */
export class AuthenticatorChain implements PasswordAuthenticator {
  /** The backend names joined with `+`, e.g. `file+ldap`. */
  readonly name: string;
  readonly #backends: PasswordAuthenticator[];
  readonly #disabled: Set<string>;

  /**
   * Creates the chain.
   *
   * @param backends tried in order
   * @param disabledDomains domains whose users are refused before any backend is asked
   */
  constructor(backends: PasswordAuthenticator[], disabledDomains: readonly string[] = []) {
    this.#backends = backends;
    this.name = backends.map((backend) => backend.name).join("+");
    this.#disabled = new Set(
      disabledDomains.map((domain) => normalizeDomain(domain) ?? domain.toLowerCase()),
    );
  }

  /** Checks a password against each backend in turn. */
  async verifyPassword(username: string, password: string): Promise<AuthResult> {
    const address = parseEmail(username);
    if (address !== null && this.#disabled.has(address.domain)) {
      return {
        ok: false,
        reason: "domain_disabled",
        detail: `domain ${address.domain} is disabled`,
      };
    }
    let temporary: AuthResult | null = null;
    let last: AuthResult = { ok: false, reason: "invalid_credentials", detail: "no backend" };
    for (const backend of this.#backends) {
      let result: AuthResult;
      try {
        result = await backend.verifyPassword(username, password);
      } catch (error) {
        const message = error instanceof Error ? error.message : "unknown error";
        result = {
          ok: false,
          reason: "temporary_failure",
          detail: `${backend.name} backend: ${message}`,
        };
      }
      if (result.ok || result.reason === "account_disabled") return result;
      if (result.reason === "temporary_failure") temporary ??= result;
      last = result;
    }
    return temporary ?? last;
  }

  /** Closes every backend. */
  async close(): Promise<void> {
    await Promise.all(this.#backends.map((backend) => backend.close()));
  }
}
