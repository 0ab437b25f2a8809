/**
 * The {@link StateStore} on Redis or Valkey, for several relay nodes: one
 * round trip per call (the mapping table is in `state_store.ts`); counters
 * and sliding windows change in Lua scripts, so each step is atomic and
 * sliding windows run on the Redis clock (`TIME`), not the nodes' clocks.
 *
 * @example
 * ```ts ignore
 * import { RedisConnection } from "./redis_client.ts";
 * import { RedisStateStore } from "./mod.ts";
 *
 * const redis = RedisConnection.open({
 *   url: "redis://127.0.0.1:6379/0",
 *   prefix: "relay:",
 *   commandTimeoutMs: 1000,
 * });
 * const store = new RedisStateStore(redis);
 * await store.increment("quota:user:bob@example.com:493000", 3_600_000);
 * await redis.close();
 * ```
 *
 * @module
 */
import type { RedisConnection } from "./redis_client.ts";
import type { StateStore, WindowHit } from "./state_store.ts";

/** INCRBY, and an expiry only for a key that has none yet (a fixed window). */
const INCREMENT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

/**
 * A sliding-window counter kept in one hash: i (the current window's index),
 * c (its count), p (the previous window's count). Moves the counts on to the
 * window holding Redis TIME, adds ARGV[2], and expires the key when it can no
 * longer be the previous window. Returns {current, previous, now}.
 */
const HIT_WINDOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local by = tonumber(ARGV[2])
local index = math.floor(now / w)
local v = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local i, c, p = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
if i == nil or i < index - 1 then c = 0; p = 0
elseif i == index - 1 then p = c; c = 0 end
if by > 0 then
  c = c + by
  redis.call('HSET', KEYS[1], 'i', index, 'c', c, 'p', p)
  redis.call('PEXPIRE', KEYS[1], (index + 2) * w - now)
elseif by < 0 and i ~= nil then
  local hit = math.floor(tonumber(ARGV[3]) / w)
  if hit == index then c = math.max(0, c + by) elseif hit == index - 1 then p = math.max(0, p + by) end
  redis.call('HSET', KEYS[1], 'i', index, 'c', c, 'p', p)
end
return {c, p, now}`;

/**
 * Takes a slot in the sorted set KEYS[1] (member ARGV[1], score = lease end on
 * Redis TIME) unless ARGV[2] live leases exist; ARGV[3] is the lease (ms).
 */
const ACQUIRE_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3], 'GT')
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1`;

/** Extends a lease still held (ZADD XX) and the set's expiry. */
const RENEW_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
end
return 0`;

/** A {@link StateStore} in Redis; see the module documentation. */
export class RedisStateStore implements StateStore {
  readonly #redis: RedisConnection;

  /** @param redis the shared connection (closed by its owner, not by {@link close}) */
  constructor(redis: RedisConnection) {
    this.#redis = redis;
  }

  async increment(key: string, windowMs: number, by = 1): Promise<number> {
    checkTtl(windowMs);
    if (!Number.isSafeInteger(by)) throw new RangeError("by must be an integer");
    return Number(await this.#redis.eval(INCREMENT, [key], [Math.ceil(windowMs), by]));
  }

  async hitWindow(key: string, windowMs: number, by = 1, at = 0): Promise<WindowHit> {
    if (!Number.isInteger(windowMs) || windowMs < 1) {
      throw new RangeError("windowMs must be a positive integer");
    }
    if (!Number.isSafeInteger(by)) throw new RangeError("by must be an integer");
    if (by < 0 && !Number.isFinite(at)) {
      throw new RangeError("a give-back needs the time of the hit");
    }
    const [current, previous, now] = await this.#redis.eval(HIT_WINDOW, [key], [
      windowMs,
      by,
      Math.floor(at),
    ]) as [
      number,
      number,
      number,
    ];
    return { current: Number(current), previous: Number(previous), now: Number(now) };
  }

  async acquireSlot(key: string, member: string, limit: number, leaseMs: number): Promise<boolean> {
    checkTtl(leaseMs);
    const taken = await this.#redis.eval(ACQUIRE_SLOT, [key], [member, limit, Math.ceil(leaseMs)]);
    return Number(taken) === 1;
  }

  async renewSlot(key: string, member: string, leaseMs: number): Promise<void> {
    checkTtl(leaseMs);
    await this.#redis.eval(RENEW_SLOT, [key], [member, Math.ceil(leaseMs)]);
  }

  async releaseSlot(key: string, member: string): Promise<void> {
    await this.#redis.run((client) => client.zRem(this.#redis.prefix + key, member));
  }

  get(key: string): Promise<string | null> {
    return this.#redis.run((client) => client.get(this.#redis.prefix + key));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    checkTtl(ttlMs);
    await this.#redis.run((client) =>
      client.set(this.#redis.prefix + key, value, {
        expiration: { type: "PX", value: Math.ceil(ttlMs) },
      })
    );
  }

  async ttl(key: string): Promise<number | null> {
    const ms = await this.#redis.run((client) => client.pTTL(this.#redis.prefix + key));
    return ms < 0 ? null : ms;
  }

  async delete(key: string): Promise<void> {
    await this.#redis.run((client) => client.del(this.#redis.prefix + key));
  }

  /** Nothing to release: the connection belongs to whoever opened it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function checkTtl(ms: number): void {
  if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError("expiry must be a positive number");
}
