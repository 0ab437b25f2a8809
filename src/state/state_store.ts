/**
 * The shared-state port: short-lived counters and values with an expiry,
 * which every relay node must see alike (rate-limit counters, quotas, and
 * later authorization codes and revocations). One node uses
 * {@link MemoryStateStore}; many nodes use a Redis implementation of the same
 * interface.
 *
 * Values are strings, as in Redis; counters are strings holding a decimal
 * integer. Every key has an expiry: nothing here is meant to live forever.
 *
 * Implemented in Redis by {@link RedisStateStore} (`redis_store.ts`), one
 * round trip per call:
 *
 * | method                          | Redis                                                      |
 * | ------------------------------- | ---------------------------------------------------------- |
 * | `increment(key, windowMs, by)`  | a script: `INCRBY key by`, then `PEXPIRE key windowMs` when the key has no expiry |
 * | `hitWindow(key, windowMs, by)`  | a script: `TIME`, then `HMGET`/`HSET` of the window's index, current and previous counts, `PEXPIRE` |
 * | `acquireSlot(key, member, ...)` | a script: `TIME`, `ZREMRANGEBYSCORE` of expired leases, `ZCARD`, `ZADD` |
 * | `renewSlot(key, member, ...)`   | a script: `ZADD XX`, `PEXPIRE`                             |
 * | `releaseSlot(key, member)`      | `ZREM key member`                                          |
 * | `get(key)`                      | `GET key`                                                  |
 * | `set(key, value, ttlMs)`        | `SET key value PX ttlMs`                                   |
 * | `ttl(key)`                      | `PTTL key` (`-2` → `null`)                                 |
 * | `delete(key)`                   | `DEL key`                                                  |
 * | `close()`                       | nothing: the shared connection is closed by its owner (`QUIT`) |
 *
 * A key prefix (`relay:`) keeps the relay's keys apart from others in a shared
 * Redis. Sliding windows are kept whole in the store ({@link StateStore.hitWindow}):
 * one atomic step per hit on the store's own clock (Redis `TIME`), so nodes
 * whose clocks disagree still count in the same windows.
 *
 * @module
 */

/** The counts of a sliding-window counter at one moment ({@link StateStore.hitWindow}). */
export interface WindowHit {
  /** Hits in the current fixed window (`floor(now / windowMs)`). */
  current: number;
  /** Hits in the window before it. */
  previous: number;
  /** The store's clock when it counted (ms since the epoch). */
  now: number;
}

/** Shared counters and values with an expiry; see the module documentation. */
export interface StateStore {
  /**
   * Adds `by` (default 1, an integer; negative releases what was added
   * before, e.g. a quota reservation) to the counter at `key` and returns the
   * new value. A key that did not exist (or had expired) starts at 0 and
   * expires `windowMs` after this call; later increments do not move the
   * expiry (a fixed window). Throws a `TypeError` when the key holds something
   * that is not a counter.
   */
  increment(key: string, windowMs: number, by?: number): Promise<number>;
  /**
   * A negative `by` gives hits back (a reservation that did not count): they
   * come off the window that holds `at` (the `now` of the hit being given
   * back, on the store's clock) while that is the current or the previous
   * window, never below 0; otherwise nothing changes.
   *
   * Counts `by` (default 1; 0 only reads) hits in the sliding-window counter
   * `key` of width `windowMs`, atomically, on the store's clock, and returns
   * the counts of the current and the previous fixed window. The key expires
   * once both windows are over. {@link "./window.ts"} turns the counts into
   * an estimate.
   */
  hitWindow(key: string, windowMs: number, by?: number, at?: number): Promise<WindowHit>;
  /**
   * Takes one of `limit` slots of `key` (concurrent connections of one
   * client address, say) for `member`, leased for `leaseMs` on the store's
   * clock; `false` when `limit` live leases exist. A holder that disappears
   * (a node that crashed) loses its slots when their leases run out; a live
   * holder renews them ({@link StateStore.renewSlot}).
   */
  acquireSlot(key: string, member: string, limit: number, leaseMs: number): Promise<boolean>;
  /** Extends a slot still held by `member` to `leaseMs` from now (nothing if it was lost). */
  renewSlot(key: string, member: string, leaseMs: number): Promise<void>;
  /** Gives a slot back. */
  releaseSlot(key: string, member: string): Promise<void>;
  /** The value at `key`, or `null` when it is missing or expired. */
  get(key: string): Promise<string | null>;
  /** Stores `value` at `key`, replacing any value and expiry; it expires after `ttlMs`. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Milliseconds until `key` expires, or `null` when it is missing or expired. */
  ttl(key: string): Promise<number | null>;
  /** Removes `key` (no error when it is missing). */
  delete(key: string): Promise<void>;
  /** Releases the store (connections, memory). Calls after `close` reject. */
  close(): Promise<void>;
}

/**
 * Thrown by a shared store that cannot reach its backend (Redis down, a
 * timeout): the caller fails closed (a temporary error to the client) or
 * open, as `[state] fail` says.
 */
export class StateUnavailableError extends Error {
  /** @param message what went wrong (never secrets) */
  constructor(message: string) {
    super(message);
    this.name = "StateUnavailableError";
  }
}
