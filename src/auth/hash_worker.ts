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

// Only install the handler when running as a worker (not when a test imports this module).
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = (event) => {
    runHashJob(event.data).then((response) => scope.postMessage(response));
  };
}
