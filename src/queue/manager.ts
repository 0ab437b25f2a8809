/**
 * The queue manager (Postfix's qmgr): takes committed messages from the
 * spool and hands them to the delivery backend, a bounded number at a time.
 * On start it resumes every message left in the spool.
 *
 * Delivery progress per recipient is kept in `queue/<id>.state` beside the
 * message so a retry never re-sends to a recipient already accepted.
 *
 * @module
 */
import { join } from "node:path";
import type { DeliveryBackend, RecipientOutcome } from "../delivery/backend.ts";
import { log } from "../observability/logger.ts";
import type { AuditLog } from "../audit/mod.ts";
import type { Spool } from "./spool.ts";

const logger = log("queue");

/** Per-message delivery state, persisted beside the message. */
export interface DeliveryState {
  attempts: number;
  /** ISO time of the next attempt. */
  nextAttempt: string;
  /** Recipients that are finished (delivered or failed), with the outcome. */
  done: Record<string, RecipientOutcome>;
  /** Last reply per deferred recipient. */
  lastError?: string;
}

/** Options for {@link QueueManager}. */
export interface QueueManagerOptions {
  spool: Spool;
  backend: DeliveryBackend;
  audit: AuditLog;
  /** Messages in delivery at once. */
  concurrency?: number;
  /** Delays (seconds) before each retry; the last repeats. */
  retrySchedule?: number[];
  /** Give up after this many seconds in the queue. */
  maxAgeSeconds?: number;
  now?: () => number;
}

const DEFAULT_RETRY = [60, 300, 900, 1800, 3600];

/** Moves messages from the spool to the backend. */
export class QueueManager {
  #o: Required<Omit<QueueManagerOptions, "now">> & { now: () => number };
  #ready: string[] = [];
  #queued = new Set<string>();
  #active = new Set<Promise<void>>();
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #stopped = false;

  /** @param options spool, backend and scheduling */
  constructor(options: QueueManagerOptions) {
    this.#o = {
      concurrency: 16,
      retrySchedule: DEFAULT_RETRY,
      maxAgeSeconds: 5 * 86400,
      now: Date.now,
      ...options,
    };
  }

  /** Schedules every message already in the spool (restart recovery). */
  async start(): Promise<number> {
    const ids = await this.#o.spool.list();
    for (const id of ids) {
      const state = await this.#readState(id);
      const due = state ? Date.parse(state.nextAttempt) - this.#o.now() : 0;
      if (due > 0) this.#schedule(id, due);
      else this.enqueue(id);
    }
    if (ids.length > 0) logger.info("resumed {count} queued messages", { count: ids.length });
    return ids.length;
  }

  /** Queues a committed message for delivery now. */
  enqueue(id: string): void {
    if (this.#stopped || this.#queued.has(id)) return;
    const timer = this.#timers.get(id);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#timers.delete(id);
    }
    this.#queued.add(id);
    this.#ready.push(id);
    this.#pump();
  }

  /** Messages waiting or in delivery. */
  get pending(): number {
    return this.#queued.size + this.#timers.size;
  }

  /** Stops scheduling and waits for deliveries in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#ready = [];
    await Promise.all(this.#active);
  }

  #schedule(id: string, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(id);
      this.enqueue(id);
    }, Math.max(0, delayMs));
    this.#timers.set(id, timer);
  }

  #pump(): void {
    while (!this.#stopped && this.#active.size < this.#o.concurrency && this.#ready.length > 0) {
      const id = this.#ready.shift()!;
      const job: Promise<void> = this.#deliver(id)
        .catch((error) => {
          logger.error("{id}: delivery crashed: {error}", { id, error: String(error) });
          this.#schedule(id, this.#o.retrySchedule[0] * 1000);
        })
        .finally(() => {
          this.#queued.delete(id);
          this.#active.delete(job);
          this.#pump();
        });
      this.#active.add(job);
    }
  }

  #statePath(id: string): string {
    return join(this.#o.spool.dir, "queue", `${id}.state`);
  }

  async #readState(id: string): Promise<DeliveryState | null> {
    try {
      return JSON.parse(await Deno.readTextFile(this.#statePath(id))) as DeliveryState;
    } catch {
      return null;
    }
  }

  async #writeState(id: string, state: DeliveryState): Promise<void> {
    const path = this.#statePath(id);
    const tmp = `${path}.tmp`;
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      await file.write(new TextEncoder().encode(JSON.stringify(state)));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  }

  async #deliver(id: string): Promise<void> {
    const { spool, backend, audit } = this.#o;
    let message;
    try {
      message = await spool.read(id);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return; // deleted meanwhile
      throw error;
    }
    const { envelope, data } = message;
    const state = await this.#readState(id) ??
      { attempts: 0, nextAttempt: new Date(this.#o.now()).toISOString(), done: {} };
    const todo = envelope.recipients.filter((r) => !(r in state.done));
    let outcomes: RecipientOutcome[];
    try {
      outcomes = todo.length === 0 ? [] : await backend.deliver(envelope, data, todo);
    } catch (error) {
      const reply = String(error instanceof Error ? error.message : error);
      outcomes = todo.map((recipient) => ({ recipient, status: "deferred", reply }));
    }
    state.attempts++;
    const deferred: RecipientOutcome[] = [];
    for (const outcome of outcomes) {
      if (outcome.status === "deferred") {
        deferred.push(outcome);
        continue;
      }
      state.done[outcome.recipient] = outcome;
      const event = outcome.status === "delivered" ? "message_relayed" : "message_bounced";
      audit.record({ event, queue_id: id, recipient: outcome.recipient, reply: outcome.reply });
      logger.info("{id}: to=<{rcpt}> via {backend} status={status} ({reply})", {
        id,
        rcpt: outcome.recipient,
        backend: backend.name,
        status: outcome.status,
        reply: outcome.reply,
      });
    }
    if (deferred.length === 0) {
      await spool.remove(id);
      await Deno.remove(this.#statePath(id)).catch(() => {});
      return;
    }
    const age = (this.#o.now() - Date.parse(envelope.receivedAt)) / 1000;
    const schedule = this.#o.retrySchedule;
    const delay = schedule[Math.min(state.attempts - 1, schedule.length - 1)];
    state.lastError = deferred[0].reply;
    state.nextAttempt = new Date(this.#o.now() + delay * 1000).toISOString();
    for (const outcome of deferred) {
      audit.record({
        event: "message_deferred",
        queue_id: id,
        recipient: outcome.recipient,
        reply: outcome.reply,
        attempts: state.attempts,
      });
      logger.warning("{id}: to=<{rcpt}> deferred ({reply}); attempt {n}, next in {delay}s", {
        id,
        rcpt: outcome.recipient,
        reply: outcome.reply,
        n: state.attempts,
        delay,
      });
    }
    if (age > this.#o.maxAgeSeconds) {
      logger.error("{id}: giving up after {age}s in the queue", { id, age: Math.round(age) });
    }
    await this.#writeState(id, state);
    this.#schedule(id, delay * 1000);
  }
}
