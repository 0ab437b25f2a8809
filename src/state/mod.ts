/**
 * Shared state: counters and short-lived values that every relay node must
 * see alike. {@link MemoryStateStore} serves one node; a Redis store
 * implementing {@link StateStore} serves many (see `state_store.ts` for the
 * command mapping). {@link SlidingWindow} and {@link FixedWindow} build rate
 * windows on top of any store.
 *
 * @module
 */
export type { StateStore } from "./state_store.ts";
export {
  DEFAULT_MAX_KEYS,
  MemoryStateStore,
  type MemoryStateStoreOptions,
} from "./memory_store.ts";
export { FixedWindow, SlidingWindow, type WindowCount } from "./window.ts";
