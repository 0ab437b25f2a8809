/**
 * Queue administration on the spool database, safe beside a running
 * server: list and inspect messages, ask for a retry, delete, count.
 *
 * Reads never change anything (a consistent snapshot beside the writer).
 * A retry request is a row in the spool's `requests` table (`<id>` or
 * `ALL`) that the server's periodic scan picks up (and a server that is
 * down honours at its next start); the CLI never rewrites a delivery state,
 * so it cannot race the server's record of delivered recipients. A delete
 * removes the message (and its body file) and leaves a `deleted` request,
 * so the server drops the message's retry timer; a delivery already under
 * way may still complete.
 *
 * @module
 */
import { type Envelope, isQueueId, type RecipientOutcome } from "../mail/mod.ts";
import { listDeadLetters } from "./dead_letter.ts";
import type { Spool, SpoolEntry } from "./spool.ts";
import { type DeliveryState, FLUSH_ALL } from "./state.ts";

/** One message as `relay queue list` shows it. */
export interface QueueEntry {
  /** Queue id. */
  id: string;
  /** Envelope sender; `""` is the null sender. */
  from: string;
  /** Every recipient of the envelope. */
  recipients: string[];
  /** Recipients not yet delivered or failed. */
  pending: string[];
  /** Message bytes. */
  size: number;
  /** ISO time the message was accepted. */
  receivedAt: string;
  /** `new`: not tried yet (or its first attempt is running); `deferred`: waiting for a retry. */
  status: "new" | "deferred";
  /** Attempts made so far. */
  attempts: number;
  /** ISO time of the next attempt (deferred messages). */
  nextAttempt?: string;
  /** The last deferral reason. */
  lastError?: string;
  /** Authenticated submitter. */
  user?: string;
}

/** A message in detail (`relay queue show`). */
export interface QueueMessageDetail extends QueueEntry {
  /** The envelope as spooled. */
  envelope: Envelope;
  /** The delivery state, or null before the first attempt. */
  state: DeliveryState | null;
  /** Outcome per recipient: finished ones, and the last deferral of pending ones. */
  outcomes: Record<string, RecipientOutcome | { status: "pending" }>;
  /** The message's header block (text, lines cut at 998 characters). */
  headers: string;
}

/** Counters for `relay queue stats`. */
export interface QueueStatistics {
  /** Messages in the queue. */
  messages: number;
  /** Their message bytes together. */
  bytes: number;
  /** Messages not tried yet (or in their first attempt). */
  new: number;
  /** Messages waiting for a retry. */
  deferred: number;
  /** Pending recipients over all messages. */
  recipients: number;
  /** Age of the oldest message, seconds (0 when empty). */
  oldestSeconds: number;
  /** Pending recipients per domain, most first (top 20). */
  byDomain: { domain: string; recipients: number }[];
  /** Messages in the dead-letter directory. */
  deadLetters: number;
}

const decoder = new TextDecoder();

/** Queue ids of committed messages, oldest first. */
export function listIds(spool: Spool): Promise<string[]> {
  return spool.list();
}

function entryOf({ id, envelope, size, state }: SpoolEntry): QueueEntry {
  return {
    id,
    from: envelope.from,
    recipients: envelope.recipients,
    pending: envelope.recipients.filter((r) => !(state && r in state.done)),
    size,
    receivedAt: envelope.receivedAt,
    status: state ? "deferred" : "new",
    attempts: state?.attempts ?? 0,
    ...(state ? { nextAttempt: state.nextAttempt } : {}),
    ...(state?.lastError ? { lastError: state.lastError } : {}),
    ...(envelope.client?.user ? { user: envelope.client.user } : {}),
  };
}

/** Every queued message, oldest first. */
export function listQueue(spool: Spool): Promise<QueueEntry[]> {
  return Promise.resolve(spool.entries().map(entryOf));
}

/** One message in detail; null when it is not in the queue. */
export async function showMessage(spool: Spool, id: string): Promise<QueueMessageDetail | null> {
  if (!isQueueId(id)) return null;
  let message;
  try {
    message = await spool.read(id);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null; // delivered meanwhile
    throw error;
  }
  const state = spool.readState(id);
  const entry = entryOf({ id, envelope: message.envelope, size: message.data.length, state });
  const outcomes: QueueMessageDetail["outcomes"] = {};
  for (const r of message.envelope.recipients) {
    outcomes[r] = state?.done[r] ?? state?.deferred?.[r] ?? { status: "pending" };
  }
  const data = message.data;
  let end = data.length;
  for (let i = 0; i + 3 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) {
      end = i + 2;
      break;
    }
  }
  const headers = decoder.decode(data.subarray(0, Math.min(end, 256 * 1024)))
    .split(/\r?\n/).map((line) => line.slice(0, 998)).join("\n").trimEnd();
  return { ...entry, envelope: message.envelope, state, outcomes, headers };
}

/**
 * Asks the server to retry a message now, or every deferred message (`"ALL"`).
 *
 * @returns false when the message is not in the queue
 */
export async function requestRetry(spool: Spool, id: string): Promise<boolean> {
  if (id !== FLUSH_ALL && !(await spool.has(id))) return false;
  await spool.requestRetry(id);
  return true;
}

/**
 * Deletes a message (and its state) from the queue.
 *
 * @returns false when it was not there
 */
export function deleteMessage(spool: Spool, id: string): Promise<boolean> {
  return spool.deleteMessage(id);
}

/** Counts the queue (and the dead letters in `deadLetterDir`). */
export async function queueStatistics(
  spool: Spool,
  deadLetterDir: string,
  now: number = Date.now(),
): Promise<QueueStatistics> {
  const entries = await listQueue(spool);
  const domains = new Map<string, number>();
  let oldest = now;
  for (const e of entries) {
    oldest = Math.min(oldest, Date.parse(e.receivedAt) || now);
    for (const r of e.pending) {
      const domain = r.slice(r.lastIndexOf("@") + 1).toLowerCase();
      domains.set(domain, (domains.get(domain) ?? 0) + 1);
    }
  }
  return {
    messages: entries.length,
    bytes: entries.reduce((n, e) => n + e.size, 0),
    new: entries.filter((e) => e.status === "new").length,
    deferred: entries.filter((e) => e.status === "deferred").length,
    recipients: entries.reduce((n, e) => n + e.pending.length, 0),
    oldestSeconds: Math.max(0, Math.round((now - oldest) / 1000)),
    byDomain: [...domains].sort((a, b) => b[1] - a[1]).slice(0, 20)
      .map(([domain, recipients]) => ({ domain, recipients })),
    deadLetters: (await listDeadLetters(deadLetterDir)).length,
  };
}
