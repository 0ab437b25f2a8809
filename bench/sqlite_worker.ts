/**
 * The SQLite side of `storage_bench.ts`, in a Worker so that the synchronous
 * `DatabaseSync` calls (and their fsyncs) stay off the main event loop.
 *
 * First message: `{ open: path, group }`; answered with `{ ready: true }`.
 * Then `{ seq, id, envelope, data }` per message, answered with
 * `{ acks: [seq, ...] }` once durable. With `group`, every message that
 * arrived while the last transaction committed goes into the next one
 * (group commit); without, each insert is its own transaction.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { setImmediate } from "node:timers";

interface Insert {
  seq: number;
  id: string;
  envelope: string;
  data: Uint8Array;
}

let db: DatabaseSync | undefined;
let insert: StatementSync | undefined;
let group = false;
let pending: Insert[] = [];
let scheduled = false;

function commitPending(): void {
  scheduled = false;
  const batch = pending;
  pending = [];
  try {
    if (group) {
      db!.exec("BEGIN");
      for (const m of batch) insert!.run(m.id, m.envelope, m.data);
      db!.exec("COMMIT");
      self.postMessage({ acks: batch.map((m) => m.seq) });
    } else {
      for (const m of batch) {
        insert!.run(m.id, m.envelope, m.data); // autocommit: one transaction, one sync
        self.postMessage({ acks: [m.seq] });
      }
    }
  } catch (error) {
    if (group && db!.isTransaction) db!.exec("ROLLBACK");
    self.postMessage({ acks: batch.map((m) => m.seq), error: String(error) });
  }
}

self.onmessage = (event: MessageEvent) => {
  const message = event.data;
  if (message.open) {
    db = new DatabaseSync(message.open);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec(
      "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, envelope TEXT NOT NULL, data BLOB NOT NULL)",
    );
    insert = db.prepare("INSERT INTO messages (id, envelope, data) VALUES (?, ?, ?)");
    group = message.group === true;
    self.postMessage({ ready: true });
    return;
  }
  pending.push(message as Insert);
  // Messages already waiting (those that arrived during the last commit) are dispatched
  // before an immediate runs: they form the next group. (setTimeout(0) would add ~1 ms.)
  if (!scheduled) {
    scheduled = true;
    setImmediate(commitPending);
  }
};
