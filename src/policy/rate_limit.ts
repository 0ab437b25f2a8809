/**
 * Limits on failed authentication, per client address, per user and per
 * domain, over a {@link StateStore} so that all relay nodes share them.
 *
 * Only failures count: a user who logs in a hundred times an hour is never
 * limited, and a success clears that user's own failure counts (only someone
 * holding the password can do that; it does not clear the address's counts,
 * or one valid account would launder an attacker's guesses). When a sliding
 * minute or hour reaches its limit, the scope is blocked for `blockSeconds`,
 * or for as long as the count needs to fall back under the limit if that is
 * longer. {@link AuthRateLimiter.check} is cheap (one read per scope) and runs
 * before the expensive password check.
 *
 * A client retrying a stale stored password sends the SAME wrong password
 * again and again; that is one guess, not many, so a repeated credential
 * counts once per hour. The caller passes a keyed-HMAC fingerprint of the
 * password ({@link CredentialFingerprinter}), never the password. On several
 * nodes give them the same key, or each node counts the repeat once.
 *
 * Checks and failures are not one atomic step: a client with many parallel
 * connections can have as many password checks in flight as it has
 * connections when its limit is reached (bounded by the per-address
 * connection cap), once.
 *
 * @module
 */
import { parseEmail } from "../mail/mod.ts";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { SlidingWindow, type StateStore } from "../state/mod.ts";
import type { RateLimitConfig } from "../config/limits_schema.ts";
import type { IpRateLimiter } from "./connection_rate.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Which counter refused an attempt. */
export type RateLimitScope = "ip" | "email" | "domain";

/** The answer of {@link AuthRateLimiter.check}. */
export type RateLimitDecision =
  | { allowed: true }
  | { allowed: false; retryAfterSeconds: number; scope: RateLimitScope };

/** An authentication attempt: who from where. */
export interface AuthAttempt {
  /** The client address. */
  ip: string;
  /** The user name as given (any case); "" when there is none yet. */
  email: string;
}

/** A failed attempt. */
export interface AuthFailure extends AuthAttempt {
  /**
   * A keyed fingerprint of the wrong password ({@link CredentialFingerprinter}),
   * so that repeating the same one counts once; omit when unknown.
   */
  credentialFingerprint?: string;
}

/** Options for {@link AuthRateLimiter}; limits of 0 are off. */
export interface AuthRateLimiterOptions {
  store: StateStore;
  /** Failures per address and per user in any minute. Default 5. */
  perMinute?: number;
  /** Failures per address and per user in any hour. Default 20. */
  perHour?: number;
  /** Seconds a scope stays blocked once a limit is reached. Default 300. */
  blockSeconds?: number;
  /** Failures for all users of a domain in any minute. Default 60. */
  perDomainPerMinute?: number;
  /** Failures for all users of a domain in any hour. Default 600. */
  perDomainPerHour?: number;
}

/** Maps the `[rate_limit]` section to {@link AuthRateLimiterOptions} (without the store). */
export function authRateLimiterOptions(
  config: RateLimitConfig,
): Omit<AuthRateLimiterOptions, "store"> {
  const on = config.enabled;
  return {
    perMinute: on ? config.per_minute : 0,
    perHour: on ? config.per_hour : 0,
    blockSeconds: config.block_seconds,
    perDomainPerMinute: on ? config.per_domain_per_minute : 0,
    perDomainPerHour: on ? config.per_domain_per_hour : 0,
  };
}

interface Limit {
  window: SlidingWindow;
  limit: number;
  name: string;
}

/** Failed-authentication limiter; see the module documentation. */
export class AuthRateLimiter {
  readonly #store: StateStore;
  readonly #blockMs: number;
  readonly #user: Limit[];
  readonly #domain: Limit[];

  /** Creates a limiter over `options.store`. */
  constructor(options: AuthRateLimiterOptions) {
    this.#store = options.store;
    const blockSeconds = options.blockSeconds ?? 300;
    if (!(blockSeconds > 0)) throw new RangeError("blockSeconds must be positive");
    this.#blockMs = blockSeconds * 1000;
    const minute = new SlidingWindow(this.#store, MINUTE);
    const hour = new SlidingWindow(this.#store, HOUR);
    const limits = (perMinute: number, perHour: number): Limit[] =>
      [
        { window: minute, limit: perMinute, name: "m" },
        { window: hour, limit: perHour, name: "h" },
      ].filter((l) => {
        if (!Number.isInteger(l.limit) || l.limit < 0) {
          throw new RangeError("limits must be non-negative integers");
        }
        return l.limit > 0;
      });
    this.#user = limits(options.perMinute ?? 5, options.perHour ?? 20);
    this.#domain = limits(options.perDomainPerMinute ?? 60, options.perDomainPerHour ?? 600);
  }

  /** Whether any limit is on. */
  get enabled(): boolean {
    return this.#user.length > 0 || this.#domain.length > 0;
  }

  /**
   * Whether an attempt may go ahead; call before verifying the credentials.
   * When several scopes are blocked, the one blocked longest is reported.
   */
  async check(attempt: AuthAttempt): Promise<RateLimitDecision> {
    if (!this.enabled) return { allowed: true };
    const scopes = this.#scopes(attempt);
    const ttls = await Promise.all(scopes.map((s) => this.#store.ttl(blockKey(s.scope, s.id))));
    let worst: RateLimitDecision = { allowed: true };
    let worstMs = 0;
    ttls.forEach((ms, i) => {
      if (ms !== null && ms > worstMs) {
        worstMs = ms;
        worst = { allowed: false, scope: scopes[i].scope, retryAfterSeconds: seconds(ms) };
      }
    });
    return worst;
  }

  /**
   * Counts a failed attempt (wrong password or unknown user; not a temporary
   * backend failure) and blocks any scope that reached a limit. Returns the
   * decision for the next attempt, so the caller may hang up at once.
   */
  async recordFailure(failure: AuthFailure): Promise<RateLimitDecision> {
    if (!this.enabled) return { allowed: true };
    const scopes = this.#scopes(failure);
    const user = scopes.find((s) => s.scope === "email");
    if (failure.credentialFingerprint && user) {
      const seen = `auth:seen:${user.id}:${failure.credentialFingerprint}`;
      // 1 on the first sight in the hour; a repeat is the same guess again.
      if (await this.#store.increment(seen, HOUR) > 1) return await this.check(failure);
    }
    await Promise.all(scopes.map(async ({ scope, id }) => {
      const limits = scope === "domain" ? this.#domain : this.#user;
      // Each window is one atomic step in the store; all are counted at once.
      const counts = await Promise.all(
        limits.map(({ window, name }) => window.hit(`auth:${scope}:${name}:${id}`)),
      );
      let blockMs = 0;
      limits.forEach(({ window, limit }, i) => {
        if (counts[i].estimate >= limit) {
          blockMs = Math.max(blockMs, this.#blockMs, window.msUntilBelow(counts[i], limit));
        }
      });
      if (blockMs > 0) {
        const key = blockKey(scope, id);
        const left = await this.#store.ttl(key);
        if (left === null || left < blockMs) await this.#store.set(key, "1", blockMs);
      }
    }));
    return await this.check(failure);
  }

  /** Notes a successful login: clears the user's own failure counts (not the address's). */
  async recordSuccess(attempt: AuthAttempt): Promise<void> {
    if (!this.enabled) return;
    const user = this.#scopes(attempt).find((s) => s.scope === "email");
    if (!user) return;
    await Promise.all(
      this.#user.map(({ window, name }) => window.reset(`auth:email:${name}:${user.id}`)),
    );
  }

  #scopes(attempt: AuthAttempt): { scope: RateLimitScope; id: string }[] {
    const scopes: { scope: RateLimitScope; id: string }[] = [];
    if (this.#user.length > 0 && attempt.ip !== "") {
      scopes.push({ scope: "ip", id: boundedKey(attempt.ip) });
    }
    const typed = attempt.email.trim();
    if (typed === "") return scopes;
    const address = parseEmail(typed);
    if (this.#user.length > 0) {
      scopes.push({ scope: "email", id: boundedKey(address?.canonical ?? typed.toLowerCase()) });
    }
    if (address && this.#domain.length > 0) {
      scopes.push({ scope: "domain", id: address.domain });
    }
    return scopes;
  }
}

function blockKey(scope: RateLimitScope, id: string): string {
  return `auth:block:${scope}:${id}`;
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Keeps store keys short whatever a client typed (AUTH lines may be 12 KB). */
function boundedKey(text: string): string {
  return text.length <= 256 ? text : "#" + createHash("sha256").update(text).digest("base64url");
}

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

/** Options for {@link oauthRateLimitHook}. */
export interface OAuthRateLimitOptions {
  /** The login page's failures count in this limiter (share it with SMTP AUTH). */
  login: AuthRateLimiter;
  /** Limits dynamic client registrations per address; default: unlimited. */
  register?: IpRateLimiter;
}

/**
 * Adapts the limiters to the OAuth server's `rateLimit` hook: a login is
 * allowed when {@link AuthRateLimiter.check} allows it. The hook only asks;
 * failures reach the limiter through {@link observeOAuthLogins}.
 */
export function oauthRateLimitHook(options: OAuthRateLimitOptions): LoginLimitHook {
  return async (key) => {
    if (key.action === "register") return options.register ? options.register.allow(key.ip) : true;
    const decision = await options.login.check({ ip: key.ip, email: key.email });
    return decision.allowed;
  };
}

/**
 * Wraps the OAuth server's `audit` hook so that login-page outcomes feed the
 * limiter: `oauth.login` failures for bad credentials count as failures (no
 * password fingerprint there, so each counts), successes clear the user's
 * counts. Every event is passed on to `next` unchanged.
 */
export function observeOAuthLogins(
  limiter: AuthRateLimiter,
  next?: SecurityEventHook,
): SecurityEventHook {
  return (event) => {
    next?.(event);
    if (event.event !== "oauth.login") return;
    const ip = typeof event.ip === "string" ? event.ip : "";
    const email = typeof event.email === "string" ? event.email : "";
    let done: Promise<unknown> | null = null;
    if (event.outcome === "success") {
      done = limiter.recordSuccess({ ip, email });
    } else if (event.reason === "invalid_credentials" || event.reason === "account_disabled") {
      done = limiter.recordFailure({ ip, email });
    }
    // The audit hook is synchronous; a store error must not become an unhandled rejection.
    done?.catch(() => {});
  };
}
