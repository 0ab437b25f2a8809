/**
 * Opens the state store `[state]` describes: {@link MemoryStateStore} for one
 * node, or Redis ({@link RedisStateStore} behind {@link FailModeStateStore})
 * for several. The Redis connection is handed out too, for the OAuth store.
 *
 * @module
 */
import type { StateConfig, StateFiles } from "../config/state_schema.ts";
import { FailModeStateStore } from "./fail_mode.ts";
import { MemoryStateStore } from "./memory_store.ts";
import type { RedisConnection } from "./redis_client.ts";
import { RedisStateStore } from "./redis_store.ts";
import type { StateStore, StateUnavailableError } from "./state_store.ts";

/** What {@link openSharedState} opened. */
export interface SharedState {
  /** Counters and values for limits and quotas. */
  store: StateStore;
  /** The Redis connection (`backend = "redis"`), else `null`. */
  redis: RedisConnection | null;
  /** Closes the store and the connection. */
  close(): Promise<void>;
}

/** Options for {@link openSharedState}. */
export interface OpenSharedStateOptions {
  /** Told when Redis becomes unavailable and when it is back (log and audit it). */
  onChange?: (available: boolean, error?: StateUnavailableError) => void;
  /** Milliseconds to wait for the first connection before going on without it; default 5 × `timeout_ms`. */
  connectWaitMs?: number;
}

/**
 * Opens the store. With Redis, waits a moment for the first connection; a
 * Redis that is down does not stop the relay (the fail mode applies until it
 * answers).
 */
export async function openSharedState(
  config: StateConfig,
  files: StateFiles,
  options: OpenSharedStateOptions = {},
): Promise<SharedState> {
  if (config.backend === "memory") {
    const store = new MemoryStateStore({ maxKeys: config.max_keys });
    return { store, redis: null, close: () => store.close() };
  }
  // Loaded here, not at start: a single-node relay never pays for the Redis client.
  const { RedisConnection } = await import("./redis_client.ts");
  const redis = RedisConnection.open({
    url: config.url,
    password: files.password,
    caPem: files.caPem,
    prefix: config.key_prefix,
    commandTimeoutMs: config.timeout_ms,
  });
  await redis.waitReady(options.connectWaitMs ?? 5 * config.timeout_ms);
  const store = new FailModeStateStore({
    shared: new RedisStateStore(redis),
    fail: config.fail,
    local: new MemoryStateStore({ maxKeys: config.max_keys }),
    onChange: options.onChange,
  });
  return {
    store,
    redis,
    async close() {
      await store.close();
      await redis.close();
    },
  };
}
