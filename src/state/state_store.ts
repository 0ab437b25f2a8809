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
 * Mapping to Redis (a future `RedisStateStore`, one round trip per call):
 *
 * | method                    | Redis                                                             |
 * | ------------------------- | ----------------------------------------------------------------- |
 * | `increment(key, windowMs, by)`| `INCRBY key by` then `PEXPIRE key windowMs NX` in one `MULTI`/`EXEC` (Redis 7), or the script `local n = redis.call('INCRBY', KEYS[1], ARGV[2]) if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n` |
 * | `get(key)`                | `GET key`                                                         |
 * | `set(key, value, ttlMs)`  | `SET key value PX ttlMs`                                          |
 * | `ttl(key)`                | `PTTL key` (`-2` → `null`; `-1` cannot happen: every key expires) |
 * | `delete(key)`             | `DEL key`                                                         |
 * | `close()`                 | `QUIT`                                                            |
 *
 * A key prefix (`relay:`) keeps the relay's keys apart from others in a shared
 * Redis. Sliding windows ({@link "./window.ts"}) are built from two fixed
 * counters keyed by the window's index, so they need nothing more than
 * `increment` and `get`, and all nodes agree on window boundaries as long as
 * their clocks are roughly in sync.
 *
 * @module
 */

/** Shared counters and values with an expiry; see the module documentation. */
export interface StateStore {
  /**
   * Adds `by` (default 1, an integer; negative gives back a reservation) to
   * the counter at `key` and returns the new value. A key that
   * did not exist (or had expired) starts at 0 and expires `windowMs` after
   * this call; later increments do not move the expiry (a fixed window).
   * Throws a `TypeError` when the key holds something that is not a counter.
   */
  increment(key: string, windowMs: number, by?: number): Promise<number>;
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
