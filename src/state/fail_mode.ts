/**
 * What a shared store does while its backend is unreachable (`[state] fail`):
 *
 * - `closed`: every call rejects with {@link StateUnavailableError}; AUTH then
 *   answers `454 4.7.0`, the OAuth endpoints 503. Nobody gets past a limit
 *   that cannot be checked.
 * - `open`: calls go to a local {@link MemoryStateStore} meanwhile, so each
 *   node enforces its limits alone (counts restart at zero, and N nodes allow
 *   up to N times a limit) while mail keeps flowing.
 *
 * Each call tries the backend first, so the store recovers by itself as soon
 * as Redis answers again: no restart. The change both ways is reported once
 * through `onChange` (the relay logs and audits it).
 *
 * @module
 */
import { MemoryStateStore } from "./memory_store.ts";
import { type StateStore, StateUnavailableError, type WindowHit } from "./state_store.ts";

/** `[state] fail`. */
export type FailMode = "open" | "closed";

/** Options for {@link FailModeStateStore}. */
export interface FailModeStateStoreOptions {
  /** The shared store (Redis). */
  shared: StateStore;
  fail: FailMode;
  /** The local store used meanwhile when failing open; default a new {@link MemoryStateStore}. */
  local?: StateStore;
  /** Told once when the shared store becomes unavailable, and once when it is back. */
  onChange?: (available: boolean, error?: StateUnavailableError) => void;
}

/** A {@link StateStore} that fails open or closed; see the module documentation. */
export class FailModeStateStore implements StateStore {
  readonly #shared: StateStore;
  readonly #local: StateStore | null;
  readonly #onChange: (available: boolean, error?: StateUnavailableError) => void;
  #available = true;

  /** Wraps `options.shared`. */
  constructor(options: FailModeStateStoreOptions) {
    this.#shared = options.shared;
    this.#local = options.fail === "open" ? options.local ?? new MemoryStateStore() : null;
    this.#onChange = options.onChange ?? (() => {});
  }

  /** Whether the shared store answered the last call. */
  get available(): boolean {
    return this.#available;
  }

  increment(key: string, windowMs: number, by?: number): Promise<number> {
    return this.#call((s) => s.increment(key, windowMs, by));
  }

  hitWindow(key: string, windowMs: number, by?: number, at?: number): Promise<WindowHit> {
    return this.#call((s) => s.hitWindow(key, windowMs, by, at));
  }

  acquireSlot(key: string, member: string, limit: number, leaseMs: number): Promise<boolean> {
    return this.#call((s) => s.acquireSlot(key, member, limit, leaseMs));
  }

  renewSlot(key: string, member: string, leaseMs: number): Promise<void> {
    return this.#call((s) => s.renewSlot(key, member, leaseMs));
  }

  releaseSlot(key: string, member: string): Promise<void> {
    return this.#call((s) => s.releaseSlot(key, member));
  }

  get(key: string): Promise<string | null> {
    return this.#call((s) => s.get(key));
  }

  set(key: string, value: string, ttlMs: number): Promise<void> {
    return this.#call((s) => s.set(key, value, ttlMs));
  }

  ttl(key: string): Promise<number | null> {
    return this.#call((s) => s.ttl(key));
  }

  delete(key: string): Promise<void> {
    return this.#call((s) => s.delete(key));
  }

  async close(): Promise<void> {
    await this.#local?.close();
    await this.#shared.close();
  }

  async #call<T>(operation: (store: StateStore) => Promise<T>): Promise<T> {
    try {
      const result = await operation(this.#shared);
      if (!this.#available) {
        this.#available = true;
        this.#onChange(true);
      }
      return result;
    } catch (error) {
      if (!(error instanceof StateUnavailableError)) throw error;
      if (this.#available) {
        this.#available = false;
        this.#onChange(false, error);
      }
      if (this.#local === null) throw error;
      return await operation(this.#local);
    }
  }
}
