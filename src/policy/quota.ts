/**
 * Sending quotas per authenticated user and per domain: messages and
 * recipients per clock hour and per UTC day (the `[quota]` section), counted
 * in a `state/` store so that all relay nodes share them.
 *
 * The session asks {@link SendQuota.checkMessage} before it accepts a
 * recipient or the DATA command, and calls {@link SendQuota.commit} only after
 * the message was queued (`250`), so refused or failed messages cost nothing.
 * Check and commit are two steps: concurrent sessions of one user can
 * overshoot a quota by the messages they have in flight at that moment.
 *
 * @example
 * ```ts
 * import { MemoryStateStore } from "../state/mod.ts";
 * import { quotaSchema } from "../config/limits_schema.ts";
 * import { SendQuota } from "./quota.ts";
 *
 * const store = new MemoryStateStore();
 * const quota = new SendQuota({ store, limits: quotaSchema.parse({ user_messages_per_hour: 100 }) });
 * const usage = { email: "bob@example.com", domain: "example.com", recipients: 3 };
 * const decision = await quota.checkMessage(usage);
 * if (decision.ok) await quota.commit(usage); // after the 250
 * await store.close();
 * ```
 *
 * @module
 */
import type { QuotaConfig } from "../config/limits_schema.ts";
import { FixedWindow, type StateStore } from "../state/mod.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** What a message uses. */
export interface QuotaUsage {
  /** The authenticated user. */
  email: string;
  /** The user's (tenant) domain. */
  domain: string;
  /** Recipients of the message (so far, when asked at RCPT time). */
  recipients: number;
}

/** Whose quota. */
export type QuotaScope = "user" | "domain";
/** What is counted. */
export type QuotaMeasure = "messages" | "recipients";
/** Over which period. */
export type QuotaWindow = "hour" | "day";

/** The answer of {@link SendQuota.checkMessage}. */
export type QuotaDecision =
  | { ok: true }
  | {
    ok: false;
    exceeded: QuotaScope;
    measure: QuotaMeasure;
    limit: number;
    window: QuotaWindow;
    /** Seconds until the window that refused restarts. */
    retryAfterSeconds: number;
    /** The message alone is larger than the limit: retrying cannot help. */
    permanent: boolean;
  };

/** Options for {@link SendQuota}. */
export interface SendQuotaOptions {
  store: StateStore;
  /** The validated `[quota]` section; a 0 turns that limit off. */
  limits: QuotaConfig;
  /** Clock in milliseconds (tests); default `Date.now`. */
  now?: () => number;
}

interface Rule {
  scope: QuotaScope;
  measure: QuotaMeasure;
  window: QuotaWindow;
  counter: FixedWindow;
  limit: number;
}

/** Per-user and per-domain sending quotas; see the module documentation. */
export class SendQuota {
  readonly #rules: Rule[];
  readonly #now: () => number;

  /** Creates the quota checker; limits of 0 are left out. */
  constructor(options: SendQuotaOptions) {
    const { store, limits } = options;
    this.#now = options.now ?? Date.now;
    const hour = new FixedWindow(store, HOUR);
    const day = new FixedWindow(store, DAY);
    const rule = (
      scope: QuotaScope,
      measure: QuotaMeasure,
      window: QuotaWindow,
      limit: number,
    ): Rule => ({ scope, measure, window, limit, counter: window === "hour" ? hour : day });
    this.#rules = [
      rule("user", "messages", "hour", limits.user_messages_per_hour),
      rule("user", "messages", "day", limits.user_messages_per_day),
      rule("user", "recipients", "hour", limits.user_recipients_per_hour),
      rule("user", "recipients", "day", limits.user_recipients_per_day),
      rule("domain", "messages", "hour", limits.domain_messages_per_hour),
      rule("domain", "messages", "day", limits.domain_messages_per_day),
      rule("domain", "recipients", "hour", limits.domain_recipients_per_hour),
      rule("domain", "recipients", "day", limits.domain_recipients_per_day),
    ].filter((r) => r.limit > 0);
  }

  /** Whether any quota is set. */
  get enabled(): boolean {
    return this.#rules.length > 0;
  }

  /**
   * Whether one more message with `usage.recipients` recipients fits every
   * quota. When several are exceeded, the one that frees up last is reported.
   */
  async checkMessage(usage: QuotaUsage): Promise<QuotaDecision> {
    if (this.#rules.length === 0) return { ok: true };
    const now = this.#now();
    const counts = await Promise.all(
      this.#rules.map((r) => r.counter.get(keyFor(r, usage), now)),
    );
    let worst: QuotaDecision = { ok: true };
    this.#rules.forEach((r, i) => {
      const need = r.measure === "messages" ? 1 : usage.recipients;
      if (counts[i] + need <= r.limit) return;
      const retryAfterSeconds = Math.ceil(r.counter.msLeft(now) / 1000);
      if (!worst.ok && worst.retryAfterSeconds >= retryAfterSeconds) return;
      worst = {
        ok: false,
        exceeded: r.scope,
        measure: r.measure,
        limit: r.limit,
        window: r.window,
        retryAfterSeconds,
        permanent: need > r.limit,
      };
    });
    return worst;
  }

  /** Counts a message that was queued (after the `250`). */
  async commit(usage: QuotaUsage): Promise<void> {
    if (this.#rules.length === 0) return;
    const now = this.#now();
    await Promise.all(
      this.#rules.map((r) =>
        r.counter.add(keyFor(r, usage), now, r.measure === "messages" ? 1 : usage.recipients)
      ),
    );
  }
}

function keyFor(rule: Rule, usage: QuotaUsage): string {
  const id = rule.scope === "user" ? usage.email.toLowerCase() : usage.domain.toLowerCase();
  return `quota:${rule.scope}:${rule.measure}:${rule.window}:${id}`;
}
