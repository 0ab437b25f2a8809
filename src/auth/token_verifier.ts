/**
 * Bearer-token verification for SMTP AUTH XOAUTH2 / OAUTHBEARER: the
 * {@link BearerAuthenticator} port implemented three ways.
 *
 * - {@link JwtBearerAuthenticator} with local keys: our own RFC 9068 tokens,
 *   checked against the key set in process (no network hop per AUTH).
 * - The same class with `createRemoteJWKSet` keys: an external IdP's JWTs.
 * - {@link IntrospectionBearerAuthenticator}: an external IdP's RFC 7662
 *   endpoint, with results cached for a few minutes.
 *
 * ECDSA verification is slow in Deno (~2,200/s), so verified tokens are
 * cached until they expire; per-use checks (revocation, user, domain,
 * scope) still run on every call.
 *
 * @module
 */
import { parseEmail } from "../mail/mod.ts";
import {
  createRemoteJWKSet,
  customFetch,
  errors as joseErrors,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { createHash } from "node:crypto";
import type { OAuthExternalConfig } from "../config/oauth_schema.ts";
import type { BearerAuthenticator, BearerResult } from "./authenticator.ts";

/** The scope a token needs to submit mail. */
export const SMTP_SEND_SCOPE = "smtp.send";

/** A token whose signature and issuer checks passed. */
export interface VerifiedToken {
  /** Canonical (lower-cased local part, ASCII domain) email address. */
  email: string;
  domain: string;
  clientId: string | null;
  scopes: string[];
  jti?: string;
  sid?: string;
  /** Epoch seconds; `Infinity` when the token had none (introspection only). */
  exp: number;
  /** Every claim, for introspection and userinfo answers. */
  claims: JWTPayload;
}

/** The outcome of checking a token on its own (no SASL user, no scope). */
export type TokenCheck =
  | { ok: true; token: VerifiedToken }
  | {
    ok: false;
    /** `temporary` when the verifier could not reach its IdP. */
    kind: "invalid" | "temporary";
    /** For logs; never contains the token. */
    detail: string;
  };

/** Checks shared by every verifier, run on every AUTH. */
export interface GrantPolicy {
  /** The scope required (default `smtp.send`). */
  requiredScope?: string;
  /** Whether a user domain may authenticate (default: all). */
  domainEnabled?: (domain: string) => boolean | Promise<boolean>;
  /** Whether a client may act for users of a domain (default: all). */
  clientAllowed?: (clientId: string | null, domain: string) => boolean | Promise<boolean>;
  /** How an external issuer's claims name the user (default: {@link emailFrom}'s search). */
  identity?: IdentityClaims;
  /** Whether the token or its session was revoked (default: never). */
  isRevoked?: (ids: { jti?: string; sid?: string }) => boolean | Promise<boolean>;
  /** The discovery URL for OAUTHBEARER failure challenges. */
  openidConfiguration?: string;
  /** The clock, epoch milliseconds. */
  now?: () => number;
  /** Most verified tokens cached (default 10,000). */
  cacheSize?: number;
}

/**
 * Where an external issuer's token names the user: one claim, believed only
 * when a second claim is `true`. Our own tokens (no such option) keep the
 * wider search of {@link emailFrom}.
 */
export interface IdentityClaims {
  /** The claim holding the address, e.g. `email`. */
  emailClaim: string;
  /** The claim that must be the boolean `true`, e.g. `email_verified`; `null`: none. */
  emailVerifiedClaim: string | null;
}

/** A jose key resolver (local key set, remote JWKS or a function). */
export type KeyResolver = (header: JWSHeaderParameters) => Promise<CryptoKey> | CryptoKey;

/** Options for {@link JwtBearerAuthenticator}. */
export interface JwtBearerOptions extends GrantPolicy {
  /** The expected `iss`. */
  issuer: string;
  /** The expected `aud`. */
  audience: string;
  /** Resolves the verification key from the JWS header. */
  keys: KeyResolver;
  /** Require `typ: at+jwt` (RFC 9068); external IdPs may not send it. Default true. */
  requireAtJwt?: boolean;
  /** Leeway for exp/nbf/iat (seconds, default 30). */
  clockToleranceSeconds?: number;
}

/** A small LRU map with per-entry expiry. */
class ExpiringCache<T> {
  readonly #entries = new Map<string, { value: T; expiresAt: number }>();
  constructor(readonly size: number, readonly now: () => number) {}

  get(key: string): T | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: T, expiresAt: number): void {
    if (this.size <= 0 || expiresAt <= this.now()) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.size) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(key, { value, expiresAt });
  }
}

/** Whether a verification error means the key set could not be fetched (not a bad token). */
function isUnreachable(error: unknown): boolean {
  if (error instanceof joseErrors.JWKSTimeout) return true;
  if (!(error instanceof joseErrors.JOSEError)) return error instanceof TypeError;
  return /JSON Web Key Set HTTP response/.test(error.message);
}

function cacheKey(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

function failure(
  status: "invalid_token" | "insufficient_scope",
  scope: string,
  detail: string,
  reason: "invalid_credentials" | "domain_disabled" = "invalid_credentials",
): BearerResult {
  return { ok: false, reason, status, scope, detail };
}

/** Picks the user's email from common claims: email, preferred_username, username, sub. */
function emailFrom(claims: JWTPayload): ReturnType<typeof parseEmail> {
  for (const name of ["email", "preferred_username", "username", "upn", "sub"]) {
    const value = claims[name];
    if (typeof value === "string" && value.includes("@")) return parseEmail(value);
  }
  return null;
}

function scopesFrom(claims: JWTPayload): string[] {
  const scope = claims.scope ?? claims.scp;
  if (typeof scope === "string") return scope.split(" ").filter(Boolean);
  if (Array.isArray(scope)) return scope.filter((s): s is string => typeof s === "string");
  return [];
}

/** The address an external issuer vouches for, or why there is none. */
function verifiedEmailFrom(
  claims: JWTPayload,
  identity: IdentityClaims,
): ReturnType<typeof parseEmail> | string {
  const value = claims[identity.emailClaim];
  if (value === undefined) return `token has no ${identity.emailClaim} claim`;
  const { emailVerifiedClaim } = identity;
  if (emailVerifiedClaim !== null && claims[emailVerifiedClaim] !== true) {
    return `email address not verified by the issuer (${emailVerifiedClaim} is not true)`;
  }
  return typeof value === "string" ? parseEmail(value) : null;
}

/** Builds a {@link VerifiedToken} from claims, or explains why not. */
function toVerified(claims: JWTPayload, identity?: IdentityClaims): VerifiedToken | string {
  const email = identity === undefined ? emailFrom(claims) : verifiedEmailFrom(claims, identity);
  if (typeof email === "string") return email;
  if (!email) return "token names no valid email address";
  const clientId = typeof claims.client_id === "string"
    ? claims.client_id
    : typeof claims.azp === "string"
    ? claims.azp
    : null;
  return {
    email: email.canonical,
    domain: email.domain,
    clientId,
    scopes: scopesFrom(claims),
    jti: typeof claims.jti === "string" ? claims.jti : undefined,
    sid: typeof claims.sid === "string" ? claims.sid : undefined,
    exp: typeof claims.exp === "number" ? claims.exp : Infinity,
    claims,
  };
}

/**
 * The per-use checks after a token verified: revocation, scope, SASL user,
 * domain and client policy.
 */
async function checkGrant(
  token: VerifiedToken,
  username: string | null,
  policy: GrantPolicy,
  backend: string,
): Promise<BearerResult> {
  const scope = policy.requiredScope ?? SMTP_SEND_SCOPE;
  if (policy.isRevoked && await policy.isRevoked({ jti: token.jti, sid: token.sid })) {
    return failure("invalid_token", scope, "token revoked");
  }
  if (!token.scopes.includes(scope)) {
    return failure("insufficient_scope", scope, `token lacks scope ${scope}`);
  }
  if (username !== null) {
    const claimed = parseEmail(username.trim());
    if (!claimed || claimed.canonical !== token.email) {
      return failure("invalid_token", scope, "SASL user differs from the token's email");
    }
  }
  if (policy.domainEnabled && !await policy.domainEnabled(token.domain)) {
    return failure("invalid_token", scope, `domain ${token.domain} is disabled`, "domain_disabled");
  }
  if (policy.clientAllowed && !await policy.clientAllowed(token.clientId, token.domain)) {
    return failure("invalid_token", scope, `client may not act for ${token.domain}`);
  }
  return { ok: true, email: token.email, domain: token.domain, backend };
}

/**
 * Verifies JWT access tokens: signature with an ES256 key from `keys` (no
 * other algorithm, so `none` and HS256-with-the-public-key fail), `typ`,
 * `iss`, `aud`, `exp`/`nbf` with a small leeway; then the per-use checks.
 */
export class JwtBearerAuthenticator implements BearerAuthenticator {
  readonly #options: JwtBearerOptions;
  readonly #now: () => number;
  readonly #cache: ExpiringCache<VerifiedToken>;
  /** {@inheritDoc BearerAuthenticator.openidConfiguration} */
  readonly openidConfiguration?: string;

  /** Creates a verifier. */
  constructor(options: JwtBearerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#cache = new ExpiringCache(options.cacheSize ?? 10_000, this.#now);
    this.openidConfiguration = options.openidConfiguration;
  }

  /**
   * Verifies signature, type, issuer, audience, lifetime and revocation; not
   * scope or user. For introspection and userinfo.
   */
  async verifyAccessToken(token: string): Promise<TokenCheck> {
    const result = await this.#verifySignature(token);
    if (!result.ok) return result;
    if (
      this.#options.isRevoked &&
      await this.#options.isRevoked({ jti: result.token.jti, sid: result.token.sid })
    ) {
      return { ok: false, kind: "invalid", detail: "token revoked" };
    }
    return result;
  }

  /** {@inheritDoc BearerAuthenticator.verifyBearer} */
  async verifyBearer(username: string | null, token: string): Promise<BearerResult> {
    const scope = this.#options.requiredScope ?? SMTP_SEND_SCOPE;
    const result = await this.#verifySignature(token);
    if (!result.ok) {
      if (result.kind === "temporary") {
        return { ok: false, reason: "temporary_failure", detail: result.detail };
      }
      return failure("invalid_token", scope, result.detail);
    }
    return await checkGrant(result.token, username, this.#options, "oauth");
  }

  async #verifySignature(token: string): Promise<TokenCheck> {
    const key = cacheKey(token);
    const leeway = this.#options.clockToleranceSeconds ?? 30;
    // Entries expire with the token (plus the leeway), so a hit is still valid.
    const cached = this.#cache.get(key);
    if (cached) return { ok: true, token: cached };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#options.keys, {
        algorithms: ["ES256"],
        issuer: this.#options.issuer,
        audience: this.#options.audience,
        typ: this.#options.requireAtJwt === false ? undefined : "at+jwt",
        clockTolerance: leeway,
        currentDate: new Date(this.#now()),
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      if (isUnreachable(error)) {
        return { ok: false, kind: "temporary", detail: "key set unreachable" };
      }
      const code = error instanceof joseErrors.JOSEError ? error.code : "ERR_INVALID";
      const claim = error instanceof joseErrors.JWTClaimValidationFailed ? ` (${error.claim})` : "";
      return { ok: false, kind: "invalid", detail: `token rejected: ${code}${claim}` };
    }
    const verified = toVerified(payload, this.#options.identity);
    if (typeof verified === "string") return { ok: false, kind: "invalid", detail: verified };
    this.#cache.set(key, verified, (verified.exp + leeway) * 1000);
    return { ok: true, token: verified };
  }
}

/** Options for {@link IntrospectionBearerAuthenticator}. */
export interface IntrospectionBearerOptions extends GrantPolicy {
  /** The RFC 7662 endpoint. */
  url: string;
  clientId: string;
  clientSecret: string;
  /** Expected `iss` (checked when the response has one). */
  issuer?: string;
  /** Expected `aud` (checked when set). */
  audience?: string;
  /** Seconds a result is cached, never past the token's exp (default 300). */
  cacheSeconds?: number;
  /** Seconds to wait for the endpoint (default 5). */
  timeoutSeconds?: number;
  /** Injected for tests. */
  fetch?: typeof fetch;
}

/** Verifies tokens by asking an RFC 7662 introspection endpoint, with a result cache. */
export class IntrospectionBearerAuthenticator implements BearerAuthenticator {
  readonly #options: IntrospectionBearerOptions;
  readonly #now: () => number;
  readonly #cache: ExpiringCache<VerifiedToken | string>;
  /** {@inheritDoc BearerAuthenticator.openidConfiguration} */
  readonly openidConfiguration?: string;

  /** Creates a verifier. */
  constructor(options: IntrospectionBearerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#cache = new ExpiringCache(options.cacheSize ?? 10_000, this.#now);
    this.openidConfiguration = options.openidConfiguration;
  }

  /** {@inheritDoc BearerAuthenticator.verifyBearer} */
  async verifyBearer(username: string | null, token: string): Promise<BearerResult> {
    const scope = this.#options.requiredScope ?? SMTP_SEND_SCOPE;
    const result = await this.verifyAccessToken(token);
    if (!result.ok) {
      return result.kind === "temporary"
        ? { ok: false, reason: "temporary_failure", detail: result.detail }
        : failure("invalid_token", scope, result.detail);
    }
    return await checkGrant(result.token, username, this.#options, "oauth-introspection");
  }

  /** Asks the endpoint (or the cache) whether the token is active. */
  async verifyAccessToken(token: string): Promise<TokenCheck> {
    const key = cacheKey(token);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      if (typeof cached === "string") return { ok: false, kind: "invalid", detail: cached };
      if (cached.exp * 1000 <= this.#now()) {
        return { ok: false, kind: "invalid", detail: "token expired" };
      }
      return { ok: true, token: cached };
    }
    let body: Record<string, unknown>;
    try {
      const response = await (this.#options.fetch ?? fetch)(this.#options.url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
          authorization: "Basic " +
            btoa(
              `${encodeURIComponent(this.#options.clientId)}:${
                encodeURIComponent(this.#options.clientSecret)
              }`,
            ),
        },
        body: new URLSearchParams({ token, token_type_hint: "access_token" }),
        signal: AbortSignal.timeout((this.#options.timeoutSeconds ?? 5) * 1000),
      });
      if (!response.ok) {
        await response.body?.cancel();
        return {
          ok: false,
          kind: "temporary",
          detail: `introspection answered HTTP ${response.status}`,
        };
      }
      body = await response.json();
    } catch {
      return { ok: false, kind: "temporary", detail: "introspection endpoint unreachable" };
    }
    const ttl = (this.#options.cacheSeconds ?? 300) * 1000;
    const verdict = this.#judge(body);
    const exp = typeof verdict === "string" ? Infinity : verdict.exp * 1000;
    this.#cache.set(key, verdict, Math.min(this.#now() + ttl, exp));
    return typeof verdict === "string"
      ? { ok: false, kind: "invalid", detail: verdict }
      : { ok: true, token: verdict };
  }

  #judge(body: Record<string, unknown>): VerifiedToken | string {
    if (body.active !== true) return "token not active";
    const nowSeconds = this.#now() / 1000;
    if (typeof body.exp === "number" && body.exp <= nowSeconds) return "token expired";
    if (this.#options.issuer && body.iss !== undefined && body.iss !== this.#options.issuer) {
      return "token from another issuer";
    }
    if (this.#options.audience) {
      const aud = Array.isArray(body.aud) ? body.aud : [body.aud];
      if (!aud.includes(this.#options.audience)) return "token for another audience";
    }
    return toVerified(body as JWTPayload, this.#options.identity);
  }
}

/** Options for {@link createExternalBearerAuthenticator}. */
export interface ExternalBearerOptions {
  domainEnabled?: GrantPolicy["domainEnabled"];
  now?: () => number;
  fetch?: typeof fetch;
}

/**
 * Builds the verifier for `[oauth.external]`: remote JWKS or introspection.
 * Returns `null` when neither is configured.
 */
export function createExternalBearerAuthenticator(
  external: OAuthExternalConfig,
  options: ExternalBearerOptions = {},
): BearerAuthenticator | null {
  const identity: IdentityClaims = {
    emailClaim: external.email_claim,
    emailVerifiedClaim: external.email_verified_claim === "" ? null : external.email_verified_claim,
  };
  if (external.jwks_url && external.issuer) {
    const jwks = createRemoteJWKSet(
      new URL(external.jwks_url),
      options.fetch ? { [customFetch]: options.fetch } : {},
    );
    return new JwtBearerAuthenticator({
      issuer: external.issuer,
      audience: external.audience ?? "smtp",
      keys: jwks,
      requireAtJwt: false,
      requiredScope: external.required_scope,
      identity,
      domainEnabled: options.domainEnabled,
      openidConfiguration: wellKnown(external.issuer),
      now: options.now,
    });
  }
  if (external.introspection_url && external.client_id && external.client_secret) {
    return new IntrospectionBearerAuthenticator({
      url: external.introspection_url,
      clientId: external.client_id,
      clientSecret: external.client_secret,
      issuer: external.issuer,
      audience: external.audience,
      cacheSeconds: external.cache_seconds,
      requiredScope: external.required_scope,
      identity,
      domainEnabled: options.domainEnabled,
      openidConfiguration: external.issuer ? wellKnown(external.issuer) : undefined,
      now: options.now,
      fetch: options.fetch,
    });
  }
  return null;
}

/** The OpenID discovery URL of an issuer. */
export function wellKnown(issuer: string): string {
  return issuer.replace(/\/+$/, "") + "/.well-known/openid-configuration";
}
