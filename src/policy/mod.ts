/**
 * What a user may do: address and domain rules, login lockouts (by
 * address and account, with familiar networks exempt), sending quotas and
 * connection-rate limits. Counters live in a
 * `state/` store, so several relay nodes share them.
 *
 * @module
 */
export {
  CredentialFingerprinter,
  type LoginLimitHook,
  type LoginRequest,
  type SecurityEventHook,
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
  ConnectionSlots,
  type ConnectionSlotsOptions,
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
