/**
 * Limits per client address over a {@link StateStore}: new connections per
 * minute (Postfix's anvil `smtpd_client_connection_rate_limit`), OAuth client
 * registrations per hour, and concurrent connections across all nodes
 * ({@link ConnectionSlots}). Each call to `allow` counts one
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
import { SlidingWindow, type StateStore, StateUnavailableError } from "../state/mod.ts";

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

  /**
   * Counts one event from `ip`; `false` when it is over the limit. `true` while
   * the shared state is unreachable.
   */
  async allow(ip: string): Promise<boolean> {
    if (this.#limit === 0) return true;
    try {
      const count = await this.#window.hit(this.#prefix + ip);
      return count.estimate <= this.#limit;
    } catch (error) {
      // Shared state unreachable and failing closed: AUTH is what fails closed,
      // a rate on connections or registrations is let through meanwhile.
      if (error instanceof StateUnavailableError) return true;
      throw error;
    }
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

/** Options for {@link ConnectionSlots}. */
export interface ConnectionSlotsOptions {
  store: StateStore;
  /** Concurrent connections per client address, all nodes together. */
  perIp: number;
  /** How long a slot lasts unless renewed; a crashed node's slots free up after it. Default 60 s. */
  leaseMs?: number;
}

/**
 * Concurrent connections per client address across every node sharing the
 * store: each connection holds a leased slot (renewed while it lasts, given
 * back when it closes). While the store is unreachable a connection is let in
 * (each node's own `max_connections_per_ip` still applies): refusing every
 * client because Redis is away would be worse than a looser cap.
 */
export class ConnectionSlots {
  readonly #store: StateStore;
  readonly #perIp: number;
  readonly #leaseMs: number;
  readonly #node = crypto.randomUUID();
  readonly #held = new Map<string, string>();
  #next = 0;
  #timer: ReturnType<typeof setInterval> | null = null;

  /** Creates the limiter; nothing is held until {@link ConnectionSlots.acquire}. */
  constructor(options: ConnectionSlotsOptions) {
    if (!Number.isInteger(options.perIp) || options.perIp < 1) {
      throw new RangeError("perIp must be a positive integer");
    }
    this.#store = options.store;
    this.#perIp = options.perIp;
    this.#leaseMs = options.leaseMs ?? 60_000;
  }

  /** Slots this node holds now. */
  get held(): number {
    return this.#held.size;
  }

  /**
   * Takes a slot for a new connection from `ip`: the function that gives it
   * back (call it when the connection closes), or `null` when `ip` has
   * `perIp` connections open on all nodes together.
   */
  async acquire(ip: string): Promise<(() => void) | null> {
    const key = `conn:open:${ip}`;
    const member = `${this.#node}:${this.#next++}`;
    try {
      if (!await this.#store.acquireSlot(key, member, this.#perIp, this.#leaseMs)) return null;
    } catch (error) {
      if (!(error instanceof StateUnavailableError)) throw error;
      return () => {};
    }
    this.#held.set(member, key);
    this.#startRenewing();
    return () => {
      if (!this.#held.delete(member)) return;
      if (this.#held.size === 0) this.#stopRenewing();
      this.#store.releaseSlot(key, member).catch(() => {/* the lease runs out */});
    };
  }

  /** Stops renewing (the relay is shutting down; leases run out by themselves). */
  close(): void {
    this.#stopRenewing();
    this.#held.clear();
  }

  #startRenewing(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => {
      for (const [member, key] of this.#held) {
        this.#store.renewSlot(key, member, this.#leaseMs).catch(() => {});
      }
    }, this.#leaseMs / 3);
    Deno.unrefTimer(this.#timer as unknown as number);
  }

  #stopRenewing(): void {
    if (this.#timer === null) return;
    clearInterval(this.#timer);
    this.#timer = null;
  }
}
