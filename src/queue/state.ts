/**
 * Delivery progress of one message, kept in `queue/<id>.state` beside the
 * immutable `queue/<id>.msg`. A message without a state file has not been
 * tried yet (or its first attempt is running).
 *
 * The file is replaced atomically (write `.state.tmp`, fsync, rename, fsync
 * the directory): once written, a recipient recorded as done is never sent
 * to again, even after a crash. Only the queue manager writes it; `relay
 * queue` only reads it (and removes it with its message).
 *
 * @module
 */
import { denoFs, type DurableFs, type RecipientOutcome, writeFileDurably } from "../mail/mod.ts";
import { join } from "node:path";
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

const encoder = new TextEncoder();

/** Path of a message's state file. */
export function statePath(spool: Spool, id: string): string {
  return spool.statePath(id);
}

/** Reads a message's state; null when there is none (never tried) or it is unreadable. */
export async function readState(spool: Spool, id: string): Promise<DeliveryState | null> {
  try {
    const state = JSON.parse(await Deno.readTextFile(statePath(spool, id)));
    if (typeof state !== "object" || state === null || typeof state.done !== "object") return null;
    return state as DeliveryState;
  } catch {
    return null;
  }
}

/** Encodes a state as its file holds it (for the `state` of `SpoolWriter.commit`). */
export function encodeState(state: DeliveryState): Uint8Array {
  return encoder.encode(JSON.stringify(state));
}

/** Replaces a message's state durably (fsync'd file, synced directory) through `fs`. */
export async function writeState(
  spool: Spool,
  id: string,
  state: DeliveryState,
  fs: DurableFs = denoFs,
): Promise<void> {
  await writeFileDurably(statePath(spool, id), encodeState(state), fs);
  await spool.queueDirSync.sync();
}

/** Removes a message's state file (missing is fine). */
export async function removeState(spool: Spool, id: string): Promise<void> {
  await Deno.remove(statePath(spool, id)).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** The `flush/` folder where `relay queue retry` leaves requests for a running server. */
export function flushDir(spool: Spool): string {
  return join(spool.dir, "flush");
}

/** The marker that asks for every deferred message to be retried now. */
export const FLUSH_ALL = "ALL";
