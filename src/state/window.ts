/**
 * Window counters over a {@link StateStore}: fixed windows aligned to the
 * clock, and sliding windows estimated from two fixed ones (the current
 * window's count plus the previous window's count weighted by how much of it
 * still overlaps the last `windowMs`), as Cloudflare and nginx-style limiters
 * do. The estimate never lets a client burst twice the limit across a window
 * boundary, and costs two keys per counter instead of one per hit.
 *
 * Sliding windows count on the store's clock ({@link StateStore.hitWindow}:
 * Redis `TIME` on several nodes), one atomic step per hit; fixed windows take
 * the caller's clock and key their counters `<key>:<window index>`.
 *
 * @example
 * ```ts
 * import { MemoryStateStore } from "./memory_store.ts";
 * import { SlidingWindow } from "./window.ts";
 *
 * const store = new MemoryStateStore();
 * const perMinute = new SlidingWindow(store, 60_000);
 * const count = await perMinute.hit("auth:ip:192.0.2.1");
 * if (count.estimate > 5) console.log("too many");
 * await store.close();
 * ```
 *
 * @module
 */
import type { StateStore, WindowHit } from "./state_store.ts";

/** A sliding-window count at one moment. */
export interface WindowCount {
  /** Estimated hits in the last `windowMs`, this one included after {@link SlidingWindow.hit}. */
  estimate: number;
  /** Hits in the current fixed window. */
  current: number;
  /** Hits in the previous fixed window. */
  previous: number;
  /** Start of the current fixed window (ms since the epoch). */
  windowStart: number;
  /** The moment the count was taken. */
  now: number;
}

/** A sliding-window counter family of one width; see the module documentation. */
export class SlidingWindow {
  readonly #store: StateStore;
  /** The window width in milliseconds. */
  readonly windowMs: number;

  /**
   * @param store where the counters live
   * @param windowMs the window width in milliseconds
   */
  constructor(store: StateStore, windowMs: number) {
    if (!Number.isInteger(windowMs) || windowMs < 1) {
      throw new RangeError("windowMs must be a positive integer");
    }
    this.#store = store;
    this.windowMs = windowMs;
  }

  /** Counts one hit for `key` (on the store's clock) and returns the new estimate. */
  async hit(key: string): Promise<WindowCount> {
    return this.#count(await this.#store.hitWindow(key, this.windowMs, 1));
  }

  /** The estimate for `key` now, without counting a hit. */
  async peek(key: string): Promise<WindowCount> {
    return this.#count(await this.#store.hitWindow(key, this.windowMs, 0));
  }

  /**
   * Takes back one hit counted at `at` (the `now` of its {@link hit}, on the
   * store's clock): a reservation that turned out not to count. It leaves
   * the window it was counted in, even if a newer one began.
   */
  async giveBack(key: string, at: number): Promise<void> {
    await this.#store.hitWindow(key, this.windowMs, -1, at);
  }

  /** Forgets every hit of `key`. */
  async reset(key: string): Promise<void> {
    await this.#store.delete(key);
  }

  /**
   * Milliseconds from `count.now` until the estimate falls below `limit` if no
   * further hits come; 0 when it already is.
   */
  msUntilBelow(count: WindowCount, limit: number): number {
    if (count.estimate < limit) return 0;
    const w = this.windowMs;
    const { current, previous, windowStart, now } = count;
    let until: number;
    if (current >= limit) {
      // Only in the next window, once `current` (then previous) has faded enough.
      until = windowStart + w + w * (1 - limit / current);
    } else {
      until = windowStart + w * (1 - (limit - current) / previous);
    }
    // +1: the estimate must be strictly below the limit.
    return Math.max(1, Math.ceil(until - now) + 1);
  }

  #count({ current, previous, now }: WindowHit): WindowCount {
    const windowStart = Math.floor(now / this.windowMs) * this.windowMs;
    const overlap = 1 - (now - windowStart) / this.windowMs;
    return { estimate: current + previous * overlap, current, previous, windowStart, now };
  }
}

/**
 * A fixed window aligned to the clock (hour, UTC day...): counts restart at
 * each multiple of `windowMs` since the epoch. Used for quotas, where
 * "this hour" and "today" are what users expect.
 */
export class FixedWindow {
  readonly #store: StateStore;
  /** The window width in milliseconds. */
  readonly windowMs: number;

  /**
   * @param store where the counters live
   * @param windowMs the window width in milliseconds
   */
  constructor(store: StateStore, windowMs: number) {
    if (!Number.isInteger(windowMs) || windowMs < 1) {
      throw new RangeError("windowMs must be a positive integer");
    }
    this.#store = store;
    this.windowMs = windowMs;
  }

  /** Adds `amount` (default 1) to `key`'s count in the window holding `now`; returns the new count. */
  async add(key: string, now: number, amount = 1): Promise<number> {
    if (!Number.isInteger(amount) || amount < 0) throw new RangeError("amount must be >= 0");
    const k = this.#key(key, now);
    const ttl = this.#msLeft(now);
    if (amount === 0) return toCount(await this.#store.get(k));
    return await this.#store.increment(k, ttl, amount);
  }

  /**
   * Takes back `amount` that was added to `key` at time `at`, if the window
   * holding `at` is still the current one at `now` (a past window is no
   * longer counted, so there is nothing to give back).
   */
  async giveBack(key: string, at: number, now: number, amount: number): Promise<void> {
    if (!Number.isInteger(amount) || amount < 0) throw new RangeError("amount must be >= 0");
    if (amount === 0 || Math.floor(at / this.windowMs) !== Math.floor(now / this.windowMs)) return;
    await this.#store.increment(this.#key(key, at), this.#msLeft(now), -amount);
  }

  /** `key`'s count in the window holding `now`. */
  async get(key: string, now: number): Promise<number> {
    return toCount(await this.#store.get(this.#key(key, now)));
  }

  /** Milliseconds from `now` until the window holding it ends. */
  msLeft(now: number): number {
    return this.#msLeft(now);
  }

  #key(key: string, now: number): string {
    return `${key}:${Math.floor(now / this.windowMs)}`;
  }

  #msLeft(now: number): number {
    return this.windowMs - (now % this.windowMs);
  }
}

function toCount(value: string | null): number {
  if (value === null) return 0;
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}
