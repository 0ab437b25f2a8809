/**
 * The `[rate_limit]` and `[quota]` sections: how many failed logins and new
 * connections a client or user gets, and how much an authenticated user or
 * domain may send.
 * For every count, 0 means "no limit".
 *
 * ```toml
 * [rate_limit]
 * per_minute = 5                 # failed logins per (address, account) pair
 * per_hour = 20
 * block_seconds = 300            # refused this long once a limit is reached
 * accounts_per_address_per_hour = 10   # spraying: distinct accounts failing from one address
 * account_failures_per_hour = 10 # then only familiar addresses may try the account
 * account_attack_seconds = 900
 * familiar_days = 30
 * token_per_minute = 5           # failed bearer tokens per address
 * token_per_hour = 20
 * per_domain_per_minute = 60     # failed logins for one domain: slow down, never refuse
 * per_domain_per_hour = 600
 * domain_delay_ms = 2000
 * connections_per_ip_per_minute = 0
 *
 * [quota]
 * user_messages_per_hour = 0
 * user_messages_per_day = 0
 * user_recipients_per_hour = 0
 * user_recipients_per_day = 0
 * domain_messages_per_hour = 0
 * domain_messages_per_day = 0
 * domain_recipients_per_hour = 0
 * domain_recipients_per_day = 0
 *
 * [state]                        # see state_schema.ts
 * backend = "memory"
 * ```
 *
 * @module
 */
import { z } from "zod";

/** A count per window; 0 turns the limit off. */
const count = z.number().int().min(0).max(1_000_000_000);

/** `[rate_limit]`: failed-authentication and connection-rate limits. */
export const rateLimitSchema = z.strictObject({
  /** Turns authentication rate limiting off altogether (tests, trusted networks). */
  enabled: z.boolean().default(true),
  /** Failed logins per (client address, account) pair in any minute (sliding). */
  per_minute: count.default(5),
  /** Failed logins per (client address, account) pair in any hour (sliding). */
  per_hour: count.default(20),
  /**
   * Seconds a pair, an address or an address's bearer tokens are refused once a
   * limit is reached (longer if the hourly count needs longer to fall back).
   */
  block_seconds: z.number().int().min(1).max(86_400).default(300),
  /**
   * Distinct accounts that may fail from one client address in any hour
   * (password spraying, unknown users included) before that address is refused
   * for every account for `block_seconds`. `limits.trusted_networks` are exempt.
   */
  accounts_per_address_per_hour: count.default(10),
  /**
   * Failed logins of one account from all addresses in any hour that put the
   * account under attack: then only familiar addresses (whose /24 or /64
   * logged in as it within `familiar_days`) may keep trying.
   */
  account_failures_per_hour: count.default(10),
  /** Seconds an account stays under attack after the last failure that kept it there. */
  account_attack_seconds: z.number().int().min(1).max(86_400).default(900),
  /** Days a network stays familiar for an account after a successful login. */
  familiar_days: z.number().int().min(1).max(365).default(30),
  /** Failed bearer tokens (XOAUTH2, OAUTHBEARER) per client address in any minute. */
  token_per_minute: count.default(5),
  /** Failed bearer tokens per client address in any hour. */
  token_per_hour: count.default(20),
  /**
   * Failed logins for all accounts of one domain in any minute past which
   * attempts from unfamiliar addresses are delayed by `domain_delay_ms`
   * (a slow-down, never a refusal: a spray cannot lock a domain out).
   */
  per_domain_per_minute: count.default(60),
  /** Failed logins for all accounts of one domain in any hour past which attempts are delayed. */
  per_domain_per_hour: count.default(600),
  /** Milliseconds of delay once a domain limit is reached. */
  domain_delay_ms: z.number().int().min(0).max(30_000).default(2000),
  /** New connections from one client address in any minute (0: no limit, as in Postfix). */
  connections_per_ip_per_minute: count.default(0),
  /** Dynamic client registrations at the OAuth server per client address and hour. */
  oauth_registrations_per_ip_per_hour: count.default(20),
}).prefault({});

/** `[quota]`: sending quotas per authenticated user and per domain (fixed UTC hours and days). */
export const quotaSchema = z.strictObject({
  /** Messages one user may send per clock hour. */
  user_messages_per_hour: count.default(0),
  /** Messages one user may send per UTC day. */
  user_messages_per_day: count.default(0),
  /** Recipients (RCPT TO) one user may address per clock hour. */
  user_recipients_per_hour: count.default(0),
  /** Recipients one user may address per UTC day. */
  user_recipients_per_day: count.default(0),
  /** Messages all users of one domain may send per clock hour. */
  domain_messages_per_hour: count.default(0),
  /** Messages all users of one domain may send per UTC day. */
  domain_messages_per_day: count.default(0),
  /** Recipients all users of one domain may address per clock hour. */
  domain_recipients_per_hour: count.default(0),
  /** Recipients all users of one domain may address per UTC day. */
  domain_recipients_per_day: count.default(0),
}).prefault({});

/** A validated `[rate_limit]` section. */
export type RateLimitConfig = z.infer<typeof rateLimitSchema>;
/** A validated `[quota]` section. */
export type QuotaConfig = z.infer<typeof quotaSchema>;
