/**
 * The queue manager (Postfix's qmgr): takes committed messages from the
 * spool and hands them to the delivery backend, a bounded number at a time,
 * and decides what happens to each recipient:
 *
 * - delivered (2xx): recorded, never sent to again;
 * - deferred (4xx, connection failure): retried after the next delay of the
 *   retry schedule (the last delay repeats) until the message is `maxAge`
 *   old, then treated as failed (status 4.4.7);
 * - failed (5xx): returned to the sender in a DSN (RFC 3464), queued like any
 *   message; when the sender is null (the message is itself a bounce) the
 *   message goes to the dead-letter directory instead.
 *
 * Progress per recipient lives in the message's spool row (see `state.ts`),
 * written durably after every attempt that leaves recipients pending, so a
 * restart resumes exactly where the queue was and never re-sends to a
 * recipient whose 250 was recorded. The message is removed once every
 * recipient is done. When a state cannot be written (a full disk), it is
 * kept in memory and used for the next attempt, so the attempt count, the
 * back-off and the recipients already done survive until the write
 * succeeds; the condition is logged once as an error, and once more when it
 * clears.
 *
 * At start every queued message is scheduled at its next attempt time. A
 * periodic scan (every `scanIntervalMs`) picks up what `relay queue` asked
 * while we run (the spool's `requests`: retry one or all now, forget a
 * deleted message's timer) and messages of the old file format put into
 * `queue/` (imported).
 *
 * @module
 */
import { type Envelope, newQueueId, type RecipientOutcome } from "../mail/mod.ts";
import { join } from "node:path";
import type { AuditLog } from "../audit/mod.ts";
import type { Config } from "../config/mod.ts";
import { parseRelayConfig } from "../config/relay_schema.ts";
import type { DeliveryBackend } from "../delivery/backend.ts";
import { isoTimeFormatter } from "../observability/iso_time.ts";
import { log } from "../observability/logger.ts";
import { writeDeadLetter } from "./dead_letter.ts";
import { buildDsn } from "./dsn.ts";
import type { Spool, SpooledMessage } from "./spool.ts";
import { type DeliveryState, FLUSH_ALL } from "./state.ts";

const logger = log("queue");

export type { DeliveryState } from "./state.ts";

/** Options for {@link QueueManager}. */
export interface QueueManagerOptions {
  /** The spool to deliver from. */
  spool: Spool;
  /** Where messages go. */
  backend: DeliveryBackend;
  /** Audit trail for `message_relayed`, `message_deferred`, `message_bounced`. */
  audit: AuditLog;
  /** Messages in delivery at once (default 16). */
  concurrency?: number;
  /**
   * Bytes of just-accepted messages held in memory for their first attempt
   * (default 32 MiB); past it, a message's first attempt reads the spool.
   */
  handoffBytes?: number;
  /** Delays (seconds) before each retry; the last repeats. Default 1 min doubling to 1 h. */
  retrySchedule?: number[];
  /** Give up (and bounce) after this many seconds in the queue (default 5 days). */
  maxAgeSeconds?: number;
  /** Milliseconds between spool scans for `relay queue` requests (default 5000; 0: never). */
  scanIntervalMs?: number;
  /** Where undeliverable, unreturnable messages go (default `<spool>/dead`). */
  deadLetterDir?: string;
  /** Our host name, for DSNs (default `localhost`). */
  hostname?: string;
  /** The clock (default `Date.now`). */
  now?: () => number;
}

/** The default retry schedule, seconds: within a minute, doubling up to an hour. */
export const DEFAULT_RETRY_SCHEDULE: readonly number[] = [60, 120, 240, 480, 960, 1920, 3600];

/** Queue settings from the configuration (`[relay]` and `[server]`), for {@link QueueManager}. */
export function queueSettings(
  config: Config,
): Pick<
  QueueManagerOptions,
  | "concurrency"
  | "retrySchedule"
  | "maxAgeSeconds"
  | "scanIntervalMs"
  | "deadLetterDir"
  | "hostname"
> {
  const relay = parseRelayConfig(config.relay);
  return {
    concurrency: relay.workers,
    retrySchedule: relay.retry_schedule,
    maxAgeSeconds: relay.max_age,
    scanIntervalMs: relay.scan_interval * 1000,
    deadLetterDir: relay.dead_letter_dir ?? join(config.spool.dir, "dead"),
    hostname: config.server.hostname,
  };
}

/** What the manager is doing, for tests and `stats`. */
export interface QueueManagerStats {
  /** Waiting for a delivery worker. */
  ready: number;
  /** Being delivered now. */
  active: number;
  /** Waiting for their retry time. */
  deferred: number;
}

/** Moves messages from the spool to the backend. */
export class QueueManager {
  #o: Required<Omit<QueueManagerOptions, "now">> & { now: () => number };
  #ready: string[] = [];
  /** Delivery-state timestamps: attempts that start and end in one millisecond share a string. */
  #iso = isoTimeFormatter();
  #queued = new Set<string>();
  #active = new Set<Promise<void>>();
  #activeIds = new Set<string>();
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #scanTimer: ReturnType<typeof setInterval> | undefined;
  /** Messages whose first attempt has not run and that have no state. */
  #fresh = new Set<string>();
  /** Messages handed over in memory at acceptance, until their first attempt. */
  #held = new Map<string, SpooledMessage>();
  #heldBytes = 0;
  #scanning: Promise<void> | null = null;
  #stopped = false;
  /** States that could not be written, by message: newer than the spool's. */
  #unsaved = new Map<string, DeliveryState>();
  /** Whether state writes are failing (the condition logged once). */
  #stateWritesFailing = false;

  /**
   * Creates a stopped manager; {@linkcode QueueManager.start} resumes the spool.
   *
   * @param options spool, backend and scheduling
   */
  constructor(options: QueueManagerOptions) {
    this.#o = {
      concurrency: 16,
      handoffBytes: 32 * 1024 * 1024,
      retrySchedule: [...DEFAULT_RETRY_SCHEDULE],
      maxAgeSeconds: 5 * 86400,
      scanIntervalMs: 5000,
      deadLetterDir: join(options.spool.dir, "dead"),
      hostname: "localhost",
      now: Date.now,
      ...stripUndefined(options),
      spool: options.spool,
      backend: options.backend,
      audit: options.audit,
    };
    if (this.#o.retrySchedule.length === 0) throw new RangeError("retry schedule is empty");
  }

  /**
   * Schedules every message already in the spool (restart recovery) and
   * starts the periodic scan. Resolves with the number of messages found.
   */
  async start(): Promise<number> {
    const now = this.#o.now();
    let found = 0;
    for (const { id, next } of this.#o.spool.schedule()) {
      found++;
      if (next !== null && next > now) this.#schedule(id, next - now);
      else this.enqueue(id);
    }
    await this.#scan();
    if (found > 0) logger.info("resumed {count} queued messages", { count: found });
    if (this.#o.scanIntervalMs > 0 && !this.#stopped) {
      this.#scanTimer = setInterval(() => {
        this.#scan().catch((error) =>
          logger.error("spool scan failed: {error}", { error: String(error) })
        );
      }, this.#o.scanIntervalMs);
    }
    return found;
  }

  /** Queues a committed message for delivery now. */
  enqueue(id: string): void {
    if (this.#stopped || this.#queued.has(id)) return;
    this.#enqueue(id);
  }

  /**
   * Queues a message just accepted, known to have no state yet: its first
   * attempt skips looking for one.
   */
  enqueueNew(id: string, message: SpooledMessage | null = null): void {
    if (this.#stopped || this.#queued.has(id)) return;
    this.#fresh.add(id);
    // Its first attempt starts from memory, within a bound on what is held.
    if (message && this.#heldBytes + message.data.length <= this.#o.handoffBytes) {
      this.#held.set(id, message);
      this.#heldBytes += message.data.length;
    }
    this.#enqueue(id);
  }

  /** The message's bytes handed over in memory, if any (given out once). */
  #takeHeld(id: string): SpooledMessage | undefined {
    const message = this.#held.get(id);
    if (message) {
      this.#held.delete(id);
      this.#heldBytes -= message.data.length;
    }
    return message;
  }

  #enqueue(id: string): void {
    const timer = this.#timers.get(id);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#timers.delete(id);
    }
    this.#queued.add(id);
    this.#ready.push(id);
    this.#pump();
  }

  /** Retries deferred messages now: one, or all when `id` is omitted. Returns how many. */
  flush(id?: string): number {
    const ids = id === undefined ? [...this.#timers.keys()] : this.#timers.has(id) ? [id] : [];
    for (const each of ids) this.enqueue(each);
    if (ids.length > 0) logger.info("flushing {count} deferred message(s)", { count: ids.length });
    return ids.length;
  }

  /** Messages waiting or in delivery. */
  get pending(): number {
    return this.#queued.size + this.#timers.size;
  }

  /** Counts by stage. */
  get stats(): QueueManagerStats {
    return {
      ready: this.#ready.length,
      active: this.#activeIds.size,
      deferred: this.#timers.size,
    };
  }

  /** Stops scheduling and waits for deliveries in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#scanTimer);
    this.#scanTimer = undefined;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#ready = [];
    this.#held.clear(); // on disk anyway: a restart resumes them from the spool
    this.#heldBytes = 0;
    await this.#scanning;
    await Promise.all(this.#active);
  }

  /** Runs one scan unless one is running; resolves with the number of messages seen. */
  #scan(): Promise<number> {
    if (this.#scanning) return this.#scanning.then(() => 0);
    let count = 0;
    this.#scanning = this.#scanOnce().then((n) => {
      count = n;
    }).finally(() => {
      this.#scanning = null;
    });
    return this.#scanning.then(() => count);
  }

  async #scanOnce(): Promise<number> {
    const { spool } = this.#o;
    // Messages of the old file format put into queue/ (a dead letter moved back).
    const imported = await spool.importLegacy();
    // Requests left by `relay queue retry` and `relay queue delete`.
    const requests = spool.requests();
    if (this.#stopped) return 0;
    for (const id of imported) this.enqueue(id);
    for (const { kind, id } of requests) {
      if (kind === "deleted") {
        const timer = this.#timers.get(id);
        if (timer === undefined) continue;
        clearTimeout(timer);
        this.#timers.delete(id);
        logger.info("{id}: removed from the queue by an operator", { id });
      } else if (id === FLUSH_ALL) {
        this.flush();
      } else if (this.flush(id) === 0 && !this.#queued.has(id)) {
        logger.info("{id}: retry requested but not in the queue", { id });
      }
    }
    if (requests.length > 0) await spool.requestsDone(requests.at(-1)!.n);
    return imported.length;
  }

  #schedule(id: string, delayMs: number): void {
    if (this.#stopped) return;
    const previous = this.#timers.get(id);
    if (previous !== undefined) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.#timers.delete(id);
      this.enqueue(id);
    }, Math.max(0, Math.min(delayMs, 2 ** 31 - 1)));
    this.#timers.set(id, timer);
  }

  #pump(): void {
    while (!this.#stopped && this.#active.size < this.#o.concurrency && this.#ready.length > 0) {
      const id = this.#ready.shift()!;
      this.#activeIds.add(id);
      const job: Promise<void> = this.#deliver(id)
        .catch((error) => {
          logger.error("{id}: delivery crashed: {error}", { id, error: String(error) });
          this.#schedule(id, this.#o.retrySchedule[0] * 1000);
        })
        .finally(() => {
          this.#queued.delete(id);
          this.#activeIds.delete(id);
          this.#active.delete(job);
          this.#pump();
        });
      this.#active.add(job);
    }
  }

  async #deliver(id: string): Promise<void> {
    const { spool, backend } = this.#o;
    // A message just accepted comes from memory; retries and recovery read the spool.
    let message = this.#takeHeld(id);
    try {
      message ??= await spool.read(id);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return; // deleted meanwhile
      throw error;
    }
    const { envelope, data } = message;
    const nowIso = () => this.#iso(this.#o.now());
    const fresh = this.#fresh.delete(id);
    const stored = this.#unsaved.get(id) ?? (fresh ? null : spool.readState(id));
    const state: DeliveryState = stored ?? { attempts: 0, nextAttempt: nowIso(), done: {} };
    const todo = envelope.recipients.filter((r) => !(r in state.done));
    // Refusals a pass-through relay already heard are bounced, not asked again.
    const refused = state.refused ?? {};
    delete state.refused;
    const known = todo.filter((r) => r in refused).map((r) => refused[r]);
    const ask = todo.filter((r) => !(r in refused));
    let outcomes: RecipientOutcome[];
    try {
      outcomes = ask.length === 0 ? [] : await backend.deliver(envelope, data, ask);
    } catch (error) {
      const reply = String(error instanceof Error ? error.message : error);
      outcomes = ask.map((recipient) => ({ recipient, status: "deferred", reply }));
    }
    outcomes.push(...known);
    state.attempts++;
    state.firstAttempt ??= nowIso();
    state.lastAttempt = nowIso();

    // A message deleted (`relay queue delete`) while it was being delivered must
    // not be bounced or rescheduled. When every recipient was delivered there is
    // nothing to bounce or reschedule, so the common case skips the stat.
    const allDelivered = outcomes.every((o) => o.status === "delivered");
    if (!allDelivered && !(await spool.has(id))) {
      logger.info("{id}: removed from the queue during delivery; dropping its state", { id });
      this.#forget(id);
      return;
    }

    const age = (this.#o.now() - Date.parse(envelope.receivedAt)) / 1000;
    const expired = age > this.#o.maxAgeSeconds;
    const delivered: RecipientOutcome[] = [];
    const failed: RecipientOutcome[] = [];
    const deferred: RecipientOutcome[] = [];
    for (const outcome of outcomes) {
      if (outcome.status === "delivered") delivered.push(outcome);
      else if (outcome.status === "failed") failed.push(outcome);
      else if (expired) {
        failed.push({
          ...outcome,
          status: "failed",
          enhanced: "4.4.7",
          reply: `message expired after ${
            Math.round(age / 3600)
          } h in the queue; last error: ${outcome.reply}`,
        });
      } else deferred.push(outcome);
    }
    if (expired && outcomes.some((o) => o.status === "deferred")) {
      logger.error("{id}: giving up after {age}s in the queue", { id, age: Math.round(age) });
    }

    for (const outcome of delivered) {
      state.done[outcome.recipient] = outcome;
      this.#o.audit.record({
        event: "message_relayed",
        queue_id: id,
        recipient: outcome.recipient,
        via: outcome.via ?? backend.name,
        reply: outcome.reply,
      });
      logger.info("{id}: to=<{rcpt}> via {via} status=delivered ({reply})", {
        id,
        rcpt: outcome.recipient,
        via: outcome.via ?? backend.name,
        reply: outcome.reply,
      });
    }

    let dsnId: string | null = null;
    if (failed.length > 0) {
      try {
        dsnId = await this.#bounce(envelope, data, failed);
        for (const outcome of failed) state.done[outcome.recipient] = outcome;
      } catch (error) {
        // No DSN and no dead letter (disk trouble?): keep them pending, and still
        // record the delivered ones below so they are never sent again.
        logger.error("{id}: cannot return the failure to <{from}>: {error}", {
          id,
          from: envelope.from,
          error: String(error),
        });
        for (const outcome of failed) {
          deferred.push({
            ...outcome,
            status: "deferred",
            reply: `bounce pending: ${outcome.reply}`,
          });
        }
      }
    }

    if (deferred.length === 0) {
      await spool.remove(id);
      this.#forget(id);
      if (dsnId) this.enqueue(dsnId);
      return;
    }

    const schedule = this.#o.retrySchedule;
    const delay = schedule[Math.min(state.attempts - 1, schedule.length - 1)];
    state.lastError = deferred[0].reply;
    state.deferred = Object.fromEntries(deferred.map((o) => [o.recipient, o]));
    state.nextAttempt = new Date(this.#o.now() + delay * 1000).toISOString();
    for (const outcome of deferred) {
      this.#o.audit.record({
        event: "message_deferred",
        queue_id: id,
        recipient: outcome.recipient,
        via: outcome.via ?? backend.name,
        reply: outcome.reply,
        attempts: state.attempts,
        next_attempt: state.nextAttempt,
      });
      logger.warning(
        "{id}: to=<{rcpt}> via {via} deferred ({reply}); attempt {n}, next in {delay}s",
        {
          id,
          rcpt: outcome.recipient,
          via: outcome.via ?? backend.name,
          reply: outcome.reply,
          n: state.attempts,
          delay,
        },
      );
    }
    await this.#saveState(id, state);
    if (dsnId) this.enqueue(dsnId);
    this.#schedule(id, delay * 1000);
  }

  /**
   * Writes a message's state; when that fails, keeps it in memory for the
   * next attempt instead. Logs the failing condition once, and once when a
   * write succeeds again. Never throws.
   */
  async #saveState(id: string, state: DeliveryState): Promise<void> {
    try {
      await this.#o.spool.writeState(id, state);
    } catch (error) {
      this.#unsaved.set(id, state);
      const fields = { id, error: String(error instanceof Error ? error.message : error) };
      if (this.#stateWritesFailing) {
        logger.debug("{id}: delivery state kept in memory: {error}", fields);
      } else {
        this.#stateWritesFailing = true;
        logger.error(
          "cannot write delivery state ({error}, first for {id}): attempt counts and " +
            "finished recipients are kept in memory, retries keep their schedule; " +
            "logged once until a write succeeds",
          fields,
        );
      }
      return;
    }
    this.#unsaved.delete(id);
    this.#cleared("a delivery state was written");
  }

  /** Drops the in-memory state of a message that needs none any more. */
  #forget(id: string): void {
    if (this.#unsaved.delete(id) && this.#unsaved.size === 0) {
      this.#cleared("no message needs its state kept in memory any more");
    }
  }

  /** Ends the failing-state-writes condition, logging that once. */
  #cleared(why: string): void {
    if (!this.#stateWritesFailing) return;
    this.#stateWritesFailing = false;
    logger.info(
      "delivery state writes recovered ({why}); {count} message(s) keep theirs in memory " +
        "until their next attempt",
      { why, count: this.#unsaved.size },
    );
  }

  /**
   * Returns failed recipients to the sender (a queued DSN), or stores the
   * message as a dead letter when the sender is null. Resolves with the
   * DSN's queue id, if one was made.
   */
  async #bounce(
    envelope: Envelope,
    data: Uint8Array,
    failed: RecipientOutcome[],
  ): Promise<string | null> {
    const id = envelope.id;
    const now = new Date(this.#o.now());
    if (envelope.from === "") {
      const path = await writeDeadLetter({
        dir: this.#o.deadLetterDir,
        envelope,
        data,
        failed,
        reason: "null sender (a bounce or a notification): the failure cannot be returned",
        now,
      });
      this.#recordBounces(id, failed, { dead_letter: path }, (fields) =>
        logger.error(
          "{id}: to=<{rcpt}> via {via} failed ({reply}); null sender: dead letter {path}",
          { ...fields, path },
        ));
      return null;
    }
    const dsnId = newQueueId(now.getTime());
    const dsn = buildDsn({
      envelope,
      data,
      failed,
      id: dsnId,
      reportingMta: this.#o.hostname,
      now,
    });
    const writer = this.#o.spool.begin(dsn.envelope);
    writer.write(dsn.data);
    await writer.commit();
    this.#recordBounces(
      id,
      failed,
      { dsn_id: dsnId },
      (fields) =>
        logger.warning("{id}: to=<{rcpt}> via {via} failed ({reply}); DSN {dsn} to <{from}>", {
          ...fields,
          dsn: dsnId,
          from: envelope.from,
        }),
    );
    return dsnId;
  }

  /** Audits each failed recipient as `message_bounced` (with `extra`) and logs it. */
  #recordBounces(
    id: string,
    failed: RecipientOutcome[],
    extra: Record<string, string>,
    logLine: (fields: { id: string; rcpt: string; via: string; reply: string }) => void,
  ): void {
    for (const outcome of failed) {
      const via = outcome.via ?? this.#o.backend.name;
      this.#o.audit.record({
        event: "message_bounced",
        queue_id: id,
        recipient: outcome.recipient,
        via,
        reply: outcome.reply,
        ...extra,
      });
      logLine({ id, rcpt: outcome.recipient, via, reply: outcome.reply });
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
