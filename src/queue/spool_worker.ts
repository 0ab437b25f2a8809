/**
 * The spool's one writer, in a Worker so that SQLite's synchronous commits
 * and their fsyncs stay off the relay's event loop. Loaded from the bundle
 * in `spool_worker_bundle.ts` (a `data:` URL needs no read permission); run
 * `deno task bundle-worker` after changing this file or what it imports.
 *
 * Group commit: every request that arrived while the last transaction
 * committed goes into the next transaction, so concurrent sessions share
 * one WAL fsync. A request is answered only once its transaction is
 * durable (or failed: then nothing of it stays). A request that fails on its
 * own (a duplicate id) fails alone; the others of its group commit.
 *
 * A group that holds nothing a client's 250 or an operator waits on (only
 * removals of delivered messages and deferrals) commits without an fsync
 * (`synchronous = NORMAL`: the WAL keeps it in order, and the next durable
 * commit's fsync covers it). It is in the WAL before its answer, so a killed
 * process loses none of it; a power loss or kernel crash can bring back a
 * message delivered just before, to be delivered again — at-least-once, as
 * Postfix unlinks a delivered queue file without syncing its folder.
 *
 * Protocol (main → worker): `{ open: dir }` → `{ ready: true, imported }` or
 * `{ ready: false, error }`; `{ seq, request }` → `{ results, commits }` per
 * group (an insert's body buffer is transferred back; `commits` counts the
 * transactions so far, with and without an fsync); `{ seq, import: true }` → the
 * ids of files of the old spool format found in `queue/`;
 * `{ close: true }` → `{ closed: true }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { setImmediate } from "node:timers";
import {
  importLegacySpool,
  isFullError,
  needsFsync,
  openDatabase,
  removeFiles,
  removeOrphanBodies,
  type WriteRequest,
  type WriteResult,
  Writes,
} from "./spool_db.ts";

let db: DatabaseSync | undefined;
let writes: Writes | undefined;
let dir = "";
let pending: { seq: number; request: WriteRequest }[] = [];
let scheduled = false;
/** Whether `synchronous` is FULL now (as openDatabase leaves it). */
let durableMode = true;
/** Transactions committed since the writer started: with their own fsync, and without. */
const commits = { synced: 0, unsynced: 0 };

function failure(seq: number, error: unknown): WriteResult {
  return {
    seq,
    ok: false,
    error: String((error as Error)?.message ?? error),
    full: isFullError(error),
  };
}

function commitPending(): void {
  scheduled = false;
  const batch = pending;
  pending = [];
  if (batch.length === 0 || !db) return;
  const results: WriteResult[] = [];
  const unlink: string[] = [];
  const durable = batch.some(({ request }) => needsFsync(request));
  try {
    if (durable !== durableMode) {
      db.exec(`PRAGMA synchronous = ${durable ? "FULL" : "NORMAL"}`);
      durableMode = durable;
    }
    db.exec("BEGIN IMMEDIATE");
    for (const { seq, request } of batch) {
      try {
        const value = writes!.apply(request, unlink);
        results.push(
          request.op === "insert"
            ? { seq, ok: true, body: request.body ?? undefined }
            : { seq, ok: true, value },
        );
      } catch (error) {
        // SQLite rolled back this statement; unless it also ended the transaction, the rest go on.
        if (!db.isTransaction) throw error;
        results.push(failure(seq, error));
      }
    }
    db.exec("COMMIT");
    if (durable) commits.synced++;
    else commits.unsynced++;
  } catch (error) {
    if (db.isTransaction) {
      try {
        db.exec("ROLLBACK");
      } catch { /* the connection reports the first error */ }
    }
    self.postMessage({ results: batch.map(({ seq }) => failure(seq, error)), commits });
    return;
  }
  removeFiles(unlink);
  const transfer = results.flatMap((r) => r.body ? [r.body.buffer as ArrayBuffer] : []);
  self.postMessage({ results, commits }, transfer);
}

self.onmessage = (event: MessageEvent) => {
  // The main thread posts its requests in batches (see `WorkerWriter` in spool.ts).
  const messages = event.data.batch ?? [event.data];
  for (const message of messages) receive(message);
};

/** What the main thread sends (see `WorkerWriter` in spool.ts). */
type Incoming =
  | { open: string }
  | { import: true; seq: number }
  | { close: true }
  | { crash: true }
  | { seq: number; request: WriteRequest };

function receive(message: Incoming): void {
  if ("open" in message) {
    try {
      dir = message.open;
      db = openDatabase(dir, { create: true });
      writes = new Writes(db, dir);
      Deno.mkdirSync(join(dir, "bodies"), { recursive: true, mode: 0o700 });
      removeOrphanBodies(db, dir);
      const imported = importLegacySpool(db, dir);
      self.postMessage({ ready: true, imported });
    } catch (error) {
      self.postMessage({ ready: false, error: String((error as Error)?.message ?? error) });
    }
    return;
  }
  if ("import" in message) {
    // Files of the old format put into queue/ while we run (a dead letter moved back).
    try {
      self.postMessage({
        results: [{ seq: message.seq, ok: true, ids: importLegacySpool(db!, dir) }],
      });
    } catch (error) {
      self.postMessage({ results: [failure(message.seq, error)] });
    }
    return;
  }
  if ("crash" in message) {
    // For tests (WorkerWriter.crashForTest): die as a bug would, outside any handler.
    setTimeout(() => {
      throw new Error("crash requested by a test");
    });
    return;
  }
  if ("close" in message) {
    if (scheduled) commitPending();
    db?.close();
    db = undefined;
    self.postMessage({ closed: true });
    return;
  }
  pending.push(message);
  // Requests already waiting (those that arrived during the last commit) are
  // dispatched before an immediate runs: they form the next group.
  if (!scheduled) {
    scheduled = true;
    setImmediate(commitPending);
  }
}
