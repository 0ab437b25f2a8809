/**
 * What a user may do: address and domain rules, failed-authentication rate
 * limits, sending quotas and connection-rate limits. Counters live in a
 * `state/` store, so several relay nodes share them.
 *
 * @module
 */
export {
  type AuthAttempt,
  type AuthFailure,
  AuthRateLimiter,
  type AuthRateLimiterOptions,
  authRateLimiterOptions,
  CredentialFingerprinter,
  oauthRateLimitHook,
  type OAuthRateLimitOptions,
  observeOAuthLogins,
  type RateLimitDecision,
  type RateLimitScope,
} from "./rate_limit.ts";
export {
  type CredentialKind,
  Lockout,
  type LockoutBlock,
  type LockoutOptions,
  lockoutOptions,
  type LockoutRefusal,
  type LockoutScope,
  type LockoutStatus,
  type LoginAttempt,
  type LoginOutcome,
  type LoginTicket,
  networkOf,
} from "./lockout.ts";
export { oauthLockout, type OAuthLockoutHooks, type OAuthLockoutOptions } from "./oauth_lockout.ts";
export {
  ConnectionRateLimiter,
  type ConnectionRateLimiterOptions,
  IpRateLimiter,
  type IpRateLimiterOptions,
} from "./connection_rate.ts";
export {
  type QuotaDecision,
  type QuotaMeasure,
  type QuotaOwner,
  QuotaReservation,
  type QuotaScope,
  type QuotaWindow,
  SendQuota,
  type SendQuotaOptions,
} from "./quota.ts";
