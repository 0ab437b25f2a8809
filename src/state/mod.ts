/**
 * Shared state: counters and short-lived values that every relay node must
 * see alike. {@link MemoryStateStore} serves one node; {@link RedisStateStore}
 * serves many (see `state_store.ts` for the command mapping), behind
 * {@link FailModeStateStore} for when Redis is away. {@link SlidingWindow}
 * and {@link FixedWindow} build rate windows on top of any store.
 *
 * @module
 */
export { type StateStore, StateUnavailableError, type WindowHit } from "./state_store.ts";
export {
  DEFAULT_MAX_KEYS,
  MemoryStateStore,
  type MemoryStateStoreOptions,
} from "./memory_store.ts";
// Types only: the Redis client (npm:redis, ~17 MB resident) loads when `backend = "redis"`
// asks for it (open.ts); import `RedisConnection` itself from `./redis_client.ts`.
export type { RedisClient, RedisConnection, RedisConnectionOptions } from "./redis_client.ts";
export { RedisStateStore } from "./redis_store.ts";
export { type FailMode, FailModeStateStore, type FailModeStateStoreOptions } from "./fail_mode.ts";
export { openSharedState, type OpenSharedStateOptions, type SharedState } from "./open.ts";
export { FixedWindow, SlidingWindow, type WindowCount } from "./window.ts";
