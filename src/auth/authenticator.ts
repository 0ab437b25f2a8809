/**
 * The Authenticator port: who a client is. SMTP AUTH (every SASL mechanism)
 * and the OAuth2 login page both ask through this interface, so neither
 * knows whether a password file, LDAP or a token service answered.
 *
 * @module
 */

/** Why a verification did not succeed. */
export type AuthFailureReason =
  /** Unknown user or wrong password: indistinguishable to the client (535). */
  | "invalid_credentials"
  /** The account exists but is locked or disabled (535). */
  | "account_disabled"
  /** The user's domain is disabled in config (535). */
  | "domain_disabled"
  /** The backend could not answer now; the client should retry later (454). */
  | "temporary_failure";

/** The outcome of verifying a credential. */
export type AuthResult =
  | {
    ok: true;
    /** The authenticated identity: a lower-cased email address. */
    email: string;
    /** Its domain, lower-cased and in ASCII (IDNA) form: the tenant. */
    domain: string;
    /** Which backend said yes (`file`, `ldap`, `oauth`...), for the audit trail. */
    backend: string;
  }
  | {
    ok: false;
    reason: AuthFailureReason;
    /** Detail for logs and the audit trail; never sent to the client, never a secret. */
    detail?: string;
  };

/** Verifies a user name and password. Implementations never throw for bad input. */
export interface PasswordAuthenticator {
  /** Short backend name for logs (`file`, `ldap`). */
  readonly name: string;
  /**
   * Checks a password. Resolves `invalid_credentials` when the user is not
   * known to this backend, so a chain can try the next backend.
   */
  verifyPassword(username: string, password: string): Promise<AuthResult>;
  /** Releases workers, sockets and watchers. */
  close(): Promise<void>;
}

/** The outcome of verifying an OAuth2 bearer token presented over SASL. */
export type BearerResult =
  | AuthResult & { ok: true }
  | AuthResult & {
    ok: false;
    /**
     * The RFC 7628 error status sent in the `334` failure challenge
     * (`invalid_token`, `insufficient_scope`, ...).
     */
    status?: string;
    /** The scope the token needed, for the failure challenge. */
    scope?: string;
  };

/** Verifies an OAuth2 bearer token for a SASL user (XOAUTH2, OAUTHBEARER). */
export interface BearerAuthenticator {
  /**
   * Checks `token` and that it was issued to `username` (when the client
   * named one; `null` otherwise).
   */
  verifyBearer(username: string | null, token: string): Promise<BearerResult>;
  /** The issuer's discovery URL, sent in OAUTHBEARER failure challenges. */
  readonly openidConfiguration?: string;
}
