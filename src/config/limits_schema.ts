/**
 * The `[rate_limit]` and `[quota]` sections: how many failed logins and new
 * connections a client or user gets, and how much an authenticated user or
 * domain may send.
 * For every count, 0 means "no limit".
 *
 * ```toml
 * [rate_limit]
 * per_minute = 5                 # failed AUTH per client address and per user
 * per_hour = 20
 * block_seconds = 300            # refused this long once a limit is reached
 * per_domain_per_minute = 60     # failed AUTH for all users of one domain
 * per_domain_per_hour = 600
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
  /** Failed AUTH attempts per client address, and per user, in any minute (sliding). */
  per_minute: count.default(5),
  /** Failed AUTH attempts per client address, and per user, in any hour (sliding). */
  per_hour: count.default(20),
  /**
   * Seconds a client address, user or domain is refused once a limit is reached
   * (longer if the hourly count needs longer to fall back under its limit).
   */
  block_seconds: z.number().int().min(1).max(86_400).default(300),
  /**
   * Failed AUTH attempts for all users of one domain in any minute: catches a
   * password spray across a tenant's users from many addresses. Reaching it
   * refuses logins for the whole domain for `block_seconds`, so keep it well
   * above what a domain's users mistype.
   */
  per_domain_per_minute: count.default(60),
  /** Failed AUTH attempts for all users of one domain in any hour. */
  per_domain_per_hour: count.default(600),
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
