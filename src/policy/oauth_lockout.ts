/**
 * The OAuth login page under the same {@link Lockout} as SMTP AUTH. The OAuth
 * server asks its `rateLimit` hook before checking a password and reports the
 * outcome through its `audit` hook; {@link oauthLockout} turns the first into
 * {@link Lockout.begin} (a reservation) and the second into
 * {@link LoginTicket.finish}, matching them by address and email. A
 * reservation whose outcome never comes (a form rejected before the password
 * check) is given back after {@link ORPHAN_MS}.
 *
 * @module
 */
import type { IpRateLimiter } from "./connection_rate.ts";
import type { Lockout, LoginOutcome, LoginTicket } from "./lockout.ts";
import type { LoginLimitHook, SecurityEventHook } from "./rate_limit.ts";

/** Milliseconds after which a reservation without an outcome is given back. */
export const ORPHAN_MS = 30_000;

/** Options for {@link oauthLockout}. */
export interface OAuthLockoutOptions {
  lockout: Lockout;
  /** Limits dynamic client registrations per address; default: unlimited. */
  register?: IpRateLimiter;
  /** Receives the `rate_limit` events (refusals, blocks, delays). */
  record: SecurityEventHook;
}

/** The two hooks to give the OAuth server. */
export interface OAuthLockoutHooks {
  /** The OAuth server's `rateLimit` hook. */
  rateLimit: LoginLimitHook;
  /** Wraps the OAuth server's `audit` hook: `oauth.login` outcomes settle reservations. */
  observe(next: SecurityEventHook): SecurityEventHook;
}

interface Pending {
  ip: string;
  email: string;
  ticket: LoginTicket;
  timer: ReturnType<typeof setTimeout>;
}

/** Builds the login page's hooks; see the module documentation. */
export function oauthLockout(options: OAuthLockoutOptions): OAuthLockoutHooks {
  const { lockout, record } = options;
  const pending: Pending[] = [];
  const settle = (entry: Pending, outcome: LoginOutcome) => {
    clearTimeout(entry.timer);
    pending.splice(pending.indexOf(entry), 1);
    entry.ticket.finish(outcome).then(({ blocks }) => {
      for (const block of blocks) {
        record({
          event: "rate_limit",
          ip: entry.ip,
          email: entry.email || undefined,
          port: "oauth",
          scope: block.scope,
          action: "blocked",
          block_seconds: block.seconds,
        });
      }
    }).catch(() => {}); // the audit hook is synchronous; a store error must not escape
  };
  return {
    rateLimit: async (request) => {
      if (request.action === "register") {
        return options.register ? await options.register.allow(request.ip) : true;
      }
      const decision = await lockout.begin({
        ip: request.ip,
        account: request.email,
        kind: "password",
      });
      const base = { event: "rate_limit", ip: request.ip, email: request.email, port: "oauth" };
      if (!decision.allowed) {
        record({
          ...base,
          scope: decision.scope,
          action: "refused",
          retry_after: decision.retryAfterSeconds,
        });
        return false;
      }
      if (decision.delayMs > 0) {
        record({ ...base, scope: decision.scope, action: "delayed", delay_ms: decision.delayMs });
        await new Promise((resolve) => setTimeout(resolve, decision.delayMs));
      }
      const entry: Pending = {
        ip: request.ip,
        email: request.email,
        ticket: decision,
        timer: setTimeout(() => settle(entry, "neutral"), ORPHAN_MS),
      };
      Deno.unrefTimer(entry.timer);
      pending.push(entry);
      return true;
    },
    observe: (next) => (event) => {
      next(event);
      if (event.event !== "oauth.login" || event.reason === "rate_limited") return;
      const ip = typeof event.ip === "string" ? event.ip : "";
      const email = typeof event.email === "string" ? event.email.toLowerCase() : "";
      const entry = pending.find((p) => p.ip === ip && p.email === email) ??
        pending.find((p) => p.ip === ip);
      if (!entry) return;
      const failed = event.reason === "invalid_credentials" || event.reason === "account_disabled";
      settle(entry, event.outcome === "success" ? "success" : failed ? "failure" : "neutral");
    },
  };
}
