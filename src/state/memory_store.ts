/**
 * The in-memory {@link StateStore} for a single relay node. Memory stays
 * bounded: expired keys are swept out (at most once per sweep interval of the
 * injected clock, and whenever the key cap is reached), and a hard cap on the
 * number of keys evicts the oldest-created keys when a flood of new keys
 * (say, an attacker cycling through invented user names) fills it.
 *
 * Evicting under a flood forgets some counters, so a limiter may let a few
 * more attempts through for the evicted keys; the cap trades that against
 * running out of memory. Size it well above the keys normal traffic creates
 * (a few per client address and per user per window).
 *
 * No timers are used, so the store keeps no event-loop work alive.
 *
 * @example Count attempts in a one-minute window
 * ```ts
 * import { MemoryStateStore } from "./memory_store.ts";
 *
 * const store = new MemoryStateStore();
 * await store.increment("auth:ip:192.0.2.1", 60_000); // 1
 * await store.increment("auth:ip:192.0.2.1", 60_000); // 2
 * await store.close();
 * ```
 *
 * @module
 */
import type { StateStore, WindowHit } from "./state_store.ts";

/** Options for {@link MemoryStateStore}. */
export interface MemoryStateStoreOptions {
  /** Most keys held; the oldest-created go first when full. Default 1,000,000. */
  maxKeys?: number;
  /** Milliseconds between sweeps of expired keys. Default 60,000. */
  sweepIntervalMs?: number;
  /** Clock in milliseconds (tests); default `Date.now`. */
  now?: () => number;
}

interface Entry {
  value: string | number | SlidingCounts | Slots;
  expiresAt: number;
}

/** Leased slots: member → lease end (ms). */
type Slots = Map<string, number>;

/** A sliding-window counter: the current window's index and the two counts. */
interface SlidingCounts {
  index: number;
  current: number;
  previous: number;
}

/** Default {@link MemoryStateStoreOptions.maxKeys}. */
export const DEFAULT_MAX_KEYS = 1_000_000;

/** A {@link StateStore} in this process's memory; see the module documentation. */
export class MemoryStateStore implements StateStore {
  readonly #maxKeys: number;
  readonly #sweepIntervalMs: number;
  readonly #now: () => number;
  // Insertion order is creation order (a key is deleted before it is re-created).
  readonly #entries = new Map<string, Entry>();
  #nextSweep: number;
  #closed = false;
  #evictions = 0;

  /** Creates an empty store. */
  constructor(options: MemoryStateStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError("maxKeys must be a positive integer");
    }
    const sweep = options.sweepIntervalMs ?? 60_000;
    if (!(sweep > 0)) throw new RangeError("sweepIntervalMs must be positive");
    this.#maxKeys = maxKeys;
    this.#sweepIntervalMs = sweep;
    this.#now = options.now ?? Date.now;
    this.#nextSweep = this.#now() + sweep;
  }

  /** Keys held, including expired ones not yet swept. */
  get size(): number {
    return this.#entries.size;
  }

  /** Keys evicted because the cap was reached (a metric worth alerting on). */
  get evictions(): number {
    return this.#evictions;
  }

  increment(key: string, windowMs: number, by = 1): Promise<number> {
    return settle(() => {
      this.#open();
      checkTtl(windowMs);
      if (!Number.isSafeInteger(by)) throw new RangeError("by must be an integer");
      const now = this.#maintain();
      const entry = this.#live(key, now);
      if (entry === undefined) {
        this.#insert(key, { value: by, expiresAt: now + windowMs });
        return by;
      }
      const current = typeof entry.value === "number"
        ? entry.value
        : typeof entry.value === "string"
        ? parseCounter(entry.value)
        : null;
      if (current === null) throw new TypeError("the value is not a counter");
      entry.value = current + by;
      return entry.value;
    });
  }

  hitWindow(key: string, windowMs: number, by = 1, at?: number): Promise<WindowHit> {
    return settle(() => {
      this.#open();
      checkTtl(windowMs);
      if (!Number.isSafeInteger(by)) throw new RangeError("by must be an integer");
      if (by < 0 && (at === undefined || !Number.isFinite(at))) {
        throw new RangeError("a give-back needs the time of the hit (at)");
      }
      const now = this.#maintain();
      const index = Math.floor(now / windowMs);
      const entry = this.#live(key, now);
      if (
        entry !== undefined && (typeof entry.value !== "object" || entry.value instanceof Map)
      ) {
        throw new TypeError("the value is not a window counter");
      }
      const counts = slide(entry?.value as SlidingCounts | undefined, index);
      if (by < 0 && entry !== undefined) {
        const hitIndex = Math.floor(at! / windowMs);
        if (hitIndex === index) counts.current = Math.max(0, counts.current + by);
        else if (hitIndex === index - 1) counts.previous = Math.max(0, counts.previous + by);
        entry.value = counts;
      } else if (by > 0) {
        counts.current += by;
        // Gone once it can no longer be the previous window.
        const expiresAt = (index + 2) * windowMs;
        if (entry === undefined) this.#insert(key, { value: counts, expiresAt });
        else Object.assign(entry, { value: counts, expiresAt });
      }
      return { current: counts.current, previous: counts.previous, now };
    });
  }

  acquireSlot(key: string, member: string, limit: number, leaseMs: number): Promise<boolean> {
    return settle(() => {
      this.#open();
      checkTtl(leaseMs);
      const now = this.#maintain();
      const slots = this.#slots(key, now);
      for (const [held, until] of slots) if (until <= now) slots.delete(held);
      if (!slots.has(member) && slots.size >= limit) return false;
      slots.set(member, now + leaseMs);
      this.#entries.get(key)!.expiresAt = now + leaseMs;
      return true;
    });
  }

  renewSlot(key: string, member: string, leaseMs: number): Promise<void> {
    return settle(() => {
      this.#open();
      checkTtl(leaseMs);
      const now = this.#maintain();
      const slots = this.#slots(key, now);
      if (!slots.has(member)) return;
      slots.set(member, now + leaseMs);
      const entry = this.#entries.get(key)!;
      entry.expiresAt = Math.max(entry.expiresAt, now + leaseMs);
    });
  }

  releaseSlot(key: string, member: string): Promise<void> {
    return settle(() => {
      this.#open();
      const entry = this.#live(key, this.#maintain());
      if (entry?.value instanceof Map) entry.value.delete(member);
    });
  }

  /** The slots at `key`, created (empty, expiring now) when missing. */
  #slots(key: string, now: number): Slots {
    const entry = this.#live(key, now);
    if (entry === undefined) {
      const slots: Slots = new Map();
      this.#insert(key, { value: slots, expiresAt: now });
      return slots;
    }
    if (!(entry.value instanceof Map)) throw new TypeError("the value is not a slot set");
    return entry.value;
  }

  get(key: string): Promise<string | null> {
    return settle(() => {
      this.#open();
      const entry = this.#live(key, this.#maintain());
      if (entry === undefined) return null;
      if (typeof entry.value === "object") throw new TypeError("the value is not a plain value");
      return String(entry.value);
    });
  }

  set(key: string, value: string, ttlMs: number): Promise<void> {
    return settle(() => {
      this.#open();
      checkTtl(ttlMs);
      const now = this.#maintain();
      this.#entries.delete(key);
      this.#insert(key, { value, expiresAt: now + ttlMs });
    });
  }

  ttl(key: string): Promise<number | null> {
    return settle(() => {
      this.#open();
      const now = this.#maintain();
      const entry = this.#live(key, now);
      return entry === undefined ? null : entry.expiresAt - now;
    });
  }

  delete(key: string): Promise<void> {
    return settle(() => {
      this.#open();
      this.#entries.delete(key);
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#entries.clear();
    return Promise.resolve();
  }

  /** Removes every expired key now; returns how many went. */
  sweep(): number {
    const now = this.#now();
    let removed = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(key);
        removed++;
      }
    }
    this.#nextSweep = now + this.#sweepIntervalMs;
    return removed;
  }

  #open(): void {
    if (this.#closed) throw new Error("state store is closed");
  }

  /** Reads the clock and sweeps when the interval has passed. */
  #maintain(): number {
    const now = this.#now();
    if (now >= this.#nextSweep) this.sweep();
    return now;
  }

  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #insert(key: string, entry: Entry): void {
    if (this.#entries.size >= this.#maxKeys && this.sweep() === 0) {
      // Still full of live keys: drop the oldest-created ones (an eighth, so a
      // flood does not pay for a full sweep on every new key).
      let drop = Math.max(1, this.#maxKeys >> 3);
      for (const old of this.#entries.keys()) {
        this.#entries.delete(old);
        this.#evictions++;
        if (--drop === 0) break;
      }
    }
    this.#entries.set(key, entry);
  }
}

/** The counts as of window `index`, moved on from what was stored. */
function slide(stored: SlidingCounts | undefined, index: number): SlidingCounts {
  if (stored === undefined || stored.index < index - 1) return { index, current: 0, previous: 0 };
  if (stored.index === index - 1) return { index, current: 0, previous: stored.current };
  return { ...stored };
}

function checkTtl(ms: number): void {
  if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError("expiry must be a positive number");
}

function parseCounter(value: string): number | null {
  return /^-?\d{1,15}$/.test(value) ? Number(value) : null;
}

/** Runs `fn` and turns its result or exception into a settled promise. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}
