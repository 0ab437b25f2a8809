/**
 * The password-hashing worker: runs {@link verifyPassword} and
 * {@link hashPassword} off the main thread, one job per message, for
 * {@link ./hash_pool.ts}. Loaded with
 * `new Worker(new URL("./hash_worker.ts", import.meta.url), { type: "module" })`.
 *
 * @module
 */
import {
  type Argon2Params,
  hashPassword,
  PasswordHashError,
  verifyPassword,
} from "./password_hash.ts";

/** A job sent to a worker. */
export type HashRequest =
  | {
    id: number;
    op: "verify";
    password: string;
    stored: string;
    allowPlaintext: boolean;
  }
  | {
    id: number;
    op: "hash";
    password: string;
    params: Argon2Params;
  };

/** A worker's answer to one {@link HashRequest}. */
export type HashResponse =
  | { id: number; ok: true; value: boolean | string }
  | {
    id: number;
    ok: false;
    /** `hash`: the stored value is unusable ({@link PasswordHashError}); `internal`: anything else. */
    kind: "hash" | "internal";
    /** Never contains a password: errors from the hash code name schemes, not values. */
    message: string;
  };

/** Runs one job; never throws (failures become `ok: false` answers). */
export async function runHashJob(request: HashRequest): Promise<HashResponse> {
  try {
    const value = request.op === "verify"
      ? await verifyPassword(request.password, request.stored, {
        allowPlaintext: request.allowPlaintext,
      })
      : await hashPassword(request.password, request.params);
    return { id: request.id, ok: true, value };
  } catch (error) {
    const kind = error instanceof PasswordHashError ? "hash" : "internal";
    const message = error instanceof Error ? error.message : "hashing failed";
    return { id: request.id, ok: false, kind, message };
  }
}

/** The parts of the worker global scope used here (the window lib does not describe them). */
interface WorkerScope {
  onmessage: ((event: MessageEvent<HashRequest>) => void) | null;
  postMessage(message: HashResponse): void;
}

/**
 * Makes `WebAssembly.instantiate(module)` hand back one instance per compiled
 * argon2 module (the one hash-wasm module that sizes its own memory: it
 * exports `Hash_SetMemorySize`). hash-wasm instantiates it afresh for every
 * hash, and each instance holds the whole argon2 memory (`m`, 19 MiB by
 * default) until V8 happens to collect it: measured, one worker grew by ~20 MB
 * per login up to ~300 MB before a collection. A worker runs one job at a
 * time and a job uses one argon2 instance, so one is enough and the worker
 * stays at one argon2 memory.
 *
 * A reused instance gets its block memory (from `Hash_GetBuffer()` to the end)
 * zeroed first, as a fresh one has it: hash-wasm 4.13's argon2 XORs every new
 * block into the old contents, so leftovers would change the hash (the test
 * catches that). Other modules keep a fresh instance per call: argon2 uses two
 * BLAKE2b hashers at once. Installed in the worker only, where nothing else
 * uses WebAssembly.
 */
export function reuseWasmInstances(wasm: typeof WebAssembly): void {
  const instantiate = wasm.instantiate.bind(wasm);
  const instances = new WeakMap<WebAssembly.Module, WebAssembly.Instance>();
  const sizesItsMemory = (module: WebAssembly.Module) =>
    wasm.Module.exports(module).some((entry) => entry.name === "Hash_SetMemorySize");
  wasm.instantiate = (async (source: unknown, imports?: WebAssembly.Imports) => {
    if (!(source instanceof wasm.Module) || !sizesItsMemory(source)) {
      return await instantiate(source as BufferSource, imports);
    }
    const reused = instances.get(source);
    if (reused === undefined) {
      const instance = await instantiate(source, imports);
      instances.set(source, instance);
      return instance;
    }
    const exports = reused.exports as { memory: WebAssembly.Memory; Hash_GetBuffer(): number };
    new Uint8Array(exports.memory.buffer, exports.Hash_GetBuffer()).fill(0);
    return reused;
  }) as typeof wasm.instantiate;
}

// Only install the handler when running as a worker (not when a test imports this module).
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  reuseWasmInstances(WebAssembly);
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = (event) => {
    runHashJob(event.data).then((response) => scope.postMessage(response));
  };
}
