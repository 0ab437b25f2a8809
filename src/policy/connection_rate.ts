/**
 * Event-rate limits per client address over a {@link StateStore}: new
 * connections per minute (Postfix's anvil `smtpd_client_connection_rate_limit`),
 * and OAuth client registrations per hour. Each call to `allow` counts one
 * event in a sliding window; events over the limit are refused and still
 * counted, so a client that keeps hammering stays refused.
 *
 * @example
 * ```ts
 * import { MemoryStateStore } from "../state/mod.ts";
 * import { ConnectionRateLimiter } from "./connection_rate.ts";
 *
 * const store = new MemoryStateStore();
 * const limiter = new ConnectionRateLimiter({ store, perMinute: 60 });
 * if (!await limiter.allow("192.0.2.1")) {
 *   // reply 421 4.7.0 and close
 * }
 * await store.close();
 * ```
 *
 * @module
 */
import { SlidingWindow, type StateStore } from "../state/mod.ts";

/** Options for {@link IpRateLimiter}. */
export interface IpRateLimiterOptions {
  store: StateStore;
  /** Events allowed per address in any window; 0 allows everything. */
  limit: number;
  /** The window width in milliseconds. */
  windowMs: number;
  /** Distinguishes this limiter's keys from others' in the store (`conn`, `oauth_register`). */
  name: string;
}

/** Counts events per client address in a sliding window; see the module documentation. */
export class IpRateLimiter {
  readonly #window: SlidingWindow;
  readonly #limit: number;
  readonly #prefix: string;

  /** Creates a limiter; nothing is counted until {@link IpRateLimiter.allow}. */
  constructor(options: IpRateLimiterOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 0) {
      throw new RangeError("limit must be a non-negative integer");
    }
    this.#window = new SlidingWindow(options.store, options.windowMs);
    this.#limit = options.limit;
    this.#prefix = `rate:${options.name}:`;
  }

  /** Whether the limit is on (above 0). */
  get enabled(): boolean {
    return this.#limit > 0;
  }

  /** Counts one event from `ip`; `false` when it is over the limit. */
  async allow(ip: string): Promise<boolean> {
    if (this.#limit === 0) return true;
    const count = await this.#window.hit(this.#prefix + ip);
    return count.estimate <= this.#limit;
  }
}

/** Options for {@link ConnectionRateLimiter}. */
export interface ConnectionRateLimiterOptions {
  store: StateStore;
  /** New connections per client address in any minute; 0 allows everything. */
  perMinute: number;
}

/** New connections per client address per minute. */
export class ConnectionRateLimiter extends IpRateLimiter {
  /** Creates a limiter counting connections in a sliding minute. */
  constructor(options: ConnectionRateLimiterOptions) {
    super({
      store: options.store,
      limit: options.perMinute,
      windowMs: 60_000,
      name: "conn",
    });
  }
}
