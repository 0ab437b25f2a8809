/**
 * Sending quotas per authenticated user and per domain: messages and
 * recipients per clock hour and per UTC day (the `[quota]` section), counted
 * in a `state/` store so that all relay nodes share them.
 *
 * A transaction *reserves* what it will use when it asks: one message at
 * MAIL, one recipient at each RCPT. A reservation is an atomic increment of
 * the shared counters, so parallel sessions of one user (on one node or on
 * several) can never overshoot a quota. When the message is accepted the
 * reservation stays counted ({@link QuotaReservation.keep}); when the
 * transaction ends without one (RSET, a refusal, a failed commit, a client
 * that went away) it is given back ({@link QuotaReservation.release}).
 *
 * @example
 * ```ts
 * import { MemoryStateStore } from "../state/mod.ts";
 * import { quotaSchema } from "../config/limits_schema.ts";
 * import { SendQuota } from "./quota.ts";
 *
 * const store = new MemoryStateStore();
 * const quota = new SendQuota({ store, limits: quotaSchema.parse({ user_messages_per_hour: 100 }) });
 * const tx = quota.open({ email: "bob@example.com", domain: "example.com" });
 * if ((await tx.reserveMessage()).ok && (await tx.reserveRecipient()).ok) {
 *   tx.keep(); // after the 250
 * } else {
 *   await tx.release();
 * }
 * await store.close();
 * ```
 *
 * @module
 */
import type { QuotaConfig } from "../config/limits_schema.ts";
import { FixedWindow, type StateStore } from "../state/mod.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Whose quota a transaction uses. */
export interface QuotaOwner {
  /** The authenticated user. */
  email: string;
  /** The user's (tenant) domain. */
  domain: string;
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

  /** Starts the reservations of one transaction of `owner`. */
  open(owner: QuotaOwner): QuotaReservation {
    return new QuotaReservation(owner, this.#rules, this.#now);
  }
}

/** What one reservation added to one counter, so it can be given back. */
interface Held {
  rule: Rule;
  key: string;
  at: number;
  amount: number;
}

/** The quota reservations of one transaction; made by {@link SendQuota.open}. */
export class QuotaReservation {
  readonly #owner: QuotaOwner;
  readonly #rules: Rule[];
  readonly #now: () => number;
  #held: Held[] = [];
  #recipients = 0;

  /** @internal use {@link SendQuota.open} */
  constructor(owner: QuotaOwner, rules: Rule[], now: () => number) {
    this.#owner = owner;
    this.#rules = rules;
    this.#now = now;
  }

  /** Reserves the message itself (at MAIL FROM). */
  reserveMessage(): Promise<QuotaDecision> {
    return this.#reserve("messages", 1);
  }

  /** Reserves one more recipient (at RCPT TO). */
  async reserveRecipient(): Promise<QuotaDecision> {
    const decision = await this.#reserve("recipients", this.#recipients + 1);
    if (decision.ok) this.#recipients++;
    return decision;
  }

  /** The message was accepted: what was reserved stays counted. */
  keep(): void {
    this.#held = [];
    this.#recipients = 0;
  }

  /** The transaction ended without a message: gives back everything reserved. */
  async release(): Promise<void> {
    const held = this.#held;
    this.#held = [];
    this.#recipients = 0;
    const now = this.#now();
    await Promise.all(held.map((h) => h.rule.counter.giveBack(h.key, h.at, now, h.amount)));
  }

  /**
   * Adds one unit of `measure` to every rule counting it; when any goes over
   * its limit, takes this unit back again and refuses. `total` is what the
   * transaction would then use (a total over the limit can never fit).
   */
  async #reserve(measure: QuotaMeasure, total: number): Promise<QuotaDecision> {
    const rules = this.#rules.filter((r) => r.measure === measure);
    if (rules.length === 0) return { ok: true };
    const now = this.#now();
    const held = rules.map((rule) => ({
      rule,
      key: keyFor(rule, this.#owner),
      at: now,
      amount: 1,
    }));
    const counts = await Promise.all(held.map((h) => h.rule.counter.add(h.key, now, 1)));
    let worst: QuotaDecision = { ok: true };
    held.forEach(({ rule }, i) => {
      if (counts[i] <= rule.limit) return;
      const retryAfterSeconds = Math.ceil(rule.counter.msLeft(now) / 1000);
      if (!worst.ok && worst.retryAfterSeconds >= retryAfterSeconds) return;
      worst = {
        ok: false,
        exceeded: rule.scope,
        measure: rule.measure,
        limit: rule.limit,
        window: rule.window,
        retryAfterSeconds,
        permanent: total > rule.limit,
      };
    });
    if (worst.ok) {
      this.#held.push(...held);
    } else {
      await Promise.all(held.map((h) => h.rule.counter.giveBack(h.key, h.at, now, h.amount)));
    }
    return worst;
  }
}

function keyFor(rule: Rule, owner: QuotaOwner): string {
  const id = rule.scope === "user" ? owner.email.toLowerCase() : owner.domain.toLowerCase();
  return `quota:${rule.scope}:${rule.measure}:${rule.window}:${id}`;
}
