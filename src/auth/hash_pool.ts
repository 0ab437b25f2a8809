/**
 * A pool of password-hashing Workers, so argon2id (~100 ms of CPU per
 * attempt) never blocks the event loop that serves every other session.
 *
 * Workers start lazily, up to `size`; each runs one job at a time, so a
 * crashed worker fails exactly its own job and is replaced on demand. Jobs
 * beyond the busy workers wait in a bounded queue.
 *
 * @example
 * ```ts
 * import { HashPool } from "./hash_pool.ts";
 *
 * const pool = new HashPool({ size: 2 });
 * const stored = await pool.hash("s3cret", { memoryKib: 19456, iterations: 2, parallelism: 1 });
 * await pool.verify("s3cret", stored, false); // true
 * await pool.close();
 * ```
 *
 * @module
 */
import type { HashRequest, HashResponse } from "./hash_worker.ts";
import { type Argon2Params, PasswordHashError } from "./password_hash.ts";

/** Hashes and verifies passwords; {@link HashPool} does it off the main thread. */
export interface PasswordHasher {
  /**
   * Checks `password` against a stored value.
   *
   * @throws {PasswordHashError} when the stored value is unusable
   * @throws {Error} when the hasher cannot run the job (queue full, worker crash, closed)
   */
  verify(password: string, stored: string, allowPlaintext: boolean): Promise<boolean>;
  /** Hashes a new password as `{ARGON2ID}...`. */
  hash(password: string, params: Argon2Params): Promise<string>;
  /** Stops the hasher; pending jobs are rejected. */
  close(): Promise<void>;
}

/** Options for {@link HashPool}. */
export interface HashPoolOptions {
  /** Most workers running at once. */
  size: number;
  /** Most jobs waiting for a worker; more are rejected at once. Default 10 000. */
  maxPending?: number;
  /** Worker module to load instead of `./hash_worker.ts` (tests). */
  workerUrl?: URL;
}

interface Job {
  request: HashRequest;
  resolve: (value: boolean | string) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
}

/** The default bound on jobs waiting for a worker. */
export const DEFAULT_MAX_PENDING = 10_000;

/** A bounded pool of hashing Workers; see the module documentation. */
export class HashPool implements PasswordHasher {
  readonly #size: number;
  readonly #maxPending: number;
  readonly #workerUrl: URL | undefined;
  readonly #slots: Slot[] = [];
  #queue: Job[] = [];
  #nextId = 1;
  #closed = false;

  /** Creates the pool; no worker starts until the first job. */
  constructor(options: HashPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError("hash pool size must be a positive integer");
    }
    this.#size = options.size;
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.#workerUrl = options.workerUrl;
  }

  /** Counts for metrics and tests: live workers, busy workers, queued jobs. */
  get stats(): { workers: number; busy: number; pending: number } {
    return {
      workers: this.#slots.length,
      busy: this.#slots.filter((slot) => slot.job !== null).length,
      pending: this.#queue.length,
    };
  }

  /** Checks a password in a worker; see {@link PasswordHasher.verify}. */
  async verify(password: string, stored: string, allowPlaintext: boolean): Promise<boolean> {
    const id = this.#nextId++;
    return await this.#submit({ id, op: "verify", password, stored, allowPlaintext }) as boolean;
  }

  /** Hashes a new password in a worker; see {@link PasswordHasher.hash}. */
  async hash(password: string, params: Argon2Params): Promise<string> {
    const id = this.#nextId++;
    return await this.#submit({ id, op: "hash", password, params }) as string;
  }

  /** Terminates every worker; queued and running jobs are rejected. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    const queued = this.#queue;
    this.#queue = [];
    for (const job of queued) job.reject(new Error("password hashing pool is closed"));
    for (const slot of this.#slots.splice(0)) {
      slot.worker.terminate();
      slot.job?.reject(new Error("password hashing pool is closed"));
      slot.job = null;
    }
    return Promise.resolve();
  }

  #submit(request: HashRequest): Promise<boolean | string> {
    if (this.#closed) return Promise.reject(new Error("password hashing pool is closed"));
    if (this.#queue.length >= this.#maxPending) {
      return Promise.reject(
        new Error(`password hashing queue full (${this.#queue.length} jobs waiting)`),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#pump();
    });
  }

  /** Hands queued jobs to idle workers, starting workers up to the pool size. */
  #pump(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      let slot = this.#slots.find((candidate) => candidate.job === null);
      if (slot === undefined) {
        if (this.#slots.length >= this.#size) return;
        slot = this.#spawn();
      }
      const job = this.#queue.shift()!;
      slot.job = job;
      slot.worker.postMessage(job.request);
    }
  }

  #spawn(): Slot {
    // The literal `new URL("./hash_worker.ts", import.meta.url)` lets `deno compile` find the module.
    const worker = this.#workerUrl === undefined
      ? new Worker(new URL("./hash_worker.ts", import.meta.url), { type: "module" })
      : new Worker(this.#workerUrl, { type: "module" });
    const slot: Slot = { worker, job: null };
    worker.onmessage = (event: MessageEvent<HashResponse>) => this.#settle(slot, event.data);
    worker.onerror = (event: ErrorEvent) => {
      // Keep the error from propagating to (and killing) the main thread.
      event.preventDefault();
      this.#crashed(slot);
    };
    worker.onmessageerror = () => this.#crashed(slot);
    this.#slots.push(slot);
    return slot;
  }

  #settle(slot: Slot, response: HashResponse): void {
    const job = slot.job;
    if (job === null || job.request.id !== response.id) {
      // An answer nobody waits for means the worker is out of step: replace it.
      this.#crashed(slot);
      return;
    }
    slot.job = null;
    if (response.ok) job.resolve(response.value);
    else if (response.kind === "hash") job.reject(new PasswordHashError(response.message));
    else job.reject(new Error(`password hashing failed: ${response.message}`));
    this.#pump();
  }

  /** Drops a failed worker, fails its job, and lets the queue start a replacement. */
  #crashed(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index === -1) return;
    this.#slots.splice(index, 1);
    slot.worker.terminate();
    const job = slot.job;
    slot.job = null;
    job?.reject(new Error("password hashing worker crashed"));
    this.#pump();
  }
}
