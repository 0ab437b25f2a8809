/**
 * Delivery progress of one message, kept in its spool row (`state`, with
 * `next_attempt`). A message without a state has not been tried yet (or
 * its first attempt is running).
 *
 * A state is replaced by a group-committed UPDATE: once written, a
 * recipient recorded as done is never sent to again, even after a crash.
 * Only the queue manager (and a pass-through commit) writes it; `relay
 * queue` only reads it.
 *
 * @module
 */
import type { RecipientOutcome } from "../mail/mod.ts";
import type { Spool } from "./spool.ts";

/** Per-message delivery state. */
export interface DeliveryState {
  /** Attempts made so far. */
  attempts: number;
  /** ISO time of the next attempt. */
  nextAttempt: string;
  /** Recipients that are finished (delivered or failed), with the outcome. */
  done: Record<string, RecipientOutcome>;
  /** The last reply of the first deferred recipient. */
  lastError?: string;
  /**
   * Recipients the backend refused for good before the message was queued
   * (pass-through): the next attempt bounces them without asking again.
   */
  refused?: Record<string, RecipientOutcome>;
  /** Last outcome of each recipient still pending. */
  deferred?: Record<string, RecipientOutcome>;
  /** ISO time of the first attempt. */
  firstAttempt?: string;
  /** ISO time of the latest attempt. */
  lastAttempt?: string;
}

/** Reads a message's state; null when there is none (never tried) or it is not queued. */
export function readState(spool: Spool, id: string): Promise<DeliveryState | null> {
  return Promise.resolve(spool.readState(id));
}

/**
 * Replaces a message's state durably.
 *
 * @returns false when the message is not queued
 */
export function writeState(spool: Spool, id: string, state: DeliveryState): Promise<boolean> {
  return spool.writeState(id, state);
}

/** The id of a retry request for every deferred message (`relay queue retry --all`). */
export const FLUSH_ALL = "ALL";
