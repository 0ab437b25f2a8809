/**
 * The `[state]` section: where the state shared by relay nodes lives
 * (failed-login counters and blocks, rate limits, quotas, connection counts,
 * the OAuth server's codes, refresh tokens, revocations and signing keys).
 *
 * ```toml
 * [state]
 * backend = "memory"                  # this process only (one node); "redis" for several
 * url = "redis://127.0.0.1:6379/0"    # rediss:// for TLS; Valkey works alike
 * password_file = ""                  # a file holding the Redis password (AUTH)
 * ca = ""                             # PEM CA for rediss:// ("" = the system's)
 * key_prefix = "relay:"
 * fail = "closed"                     # Redis unreachable: "closed" (454 / 503) or "open"
 * timeout_ms = 1000
 * max_keys = 1000000                  # memory backend, and the local fallback of fail = "open"
 * ```
 *
 * @module
 */
import { z } from "zod";

/** `[state]`: where shared state lives. */
export const stateSchema = z.strictObject({
  /** `memory`: this process only (one node). `redis`: Redis or Valkey, shared by every node. */
  backend: z.enum(["memory", "redis"]).default("memory"),
  /** The Redis URL: `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. */
  url: z.string().refine((text) => {
    try {
      const url = new URL(text);
      return (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "";
    } catch {
      return false;
    }
  }, 'expected a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379/0"').default(
    "redis://127.0.0.1:6379/0",
  ),
  /** A file whose first line is the Redis password; "" for none (or one in `url`). */
  password_file: z.string().default(""),
  /** PEM CA certificates trusted for `rediss://`; "" trusts the system's. */
  ca: z.string().default(""),
  /** Prepended to every key, so relays (or other applications) can share a Redis. */
  key_prefix: z.string().max(64).default("relay:"),
  /**
   * While Redis is unreachable: `closed` refuses what needs it (AUTH answers
   * 454 4.7.0, the OAuth endpoints 503); `open` enforces limits per node in
   * memory meanwhile. Recovery needs no restart either way.
   */
  fail: z.enum(["closed", "open"]).default("closed"),
  /** Milliseconds a Redis command may take before Redis counts as unreachable. */
  timeout_ms: z.number().int().min(10).max(60_000).default(1000),
  /** Most keys the memory backend holds before evicting the oldest. */
  max_keys: z.number().int().min(1000).max(100_000_000).default(1_000_000),
}).prefault({});

/** A validated `[state]` section. */
export type StateConfig = z.infer<typeof stateSchema>;

/** Secrets and certificates the `[state]` section points to, read from their files. */
export interface StateFiles {
  /** From `password_file` (first line), when set. */
  password?: string;
  /** From `ca`, when set. */
  caPem?: string;
}

/** Reads the files `[state]` names; errors name the key. */
export async function readStateFiles(state: StateConfig): Promise<StateFiles> {
  const read = async (key: string, path: string): Promise<string> => {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound ? "file not found" : String(error);
      throw new Error(`state.${key}: cannot read ${path}: ${reason}`);
    }
  };
  const files: StateFiles = {};
  if (state.password_file !== "") {
    const password = (await read("password_file", state.password_file)).split(/\r?\n/)[0];
    if (password === "") throw new Error(`state.password_file: ${state.password_file} is empty`);
    files.password = password;
  }
  if (state.ca !== "") files.caPem = await read("ca", state.ca);
  return files;
}
