/**
 * The spool's SQLite database (`<spool>/spool.db`, WAL): its schema, how a
 * connection is opened, the write requests every writer applies the same
 * way, and the import of the file-per-message spool of earlier versions.
 *
 * Shared by the writer Worker (`spool_worker.ts`, the relay's one writer,
 * group commit), the relay's read-only connection on the main thread, and
 * `relay queue` (its own connection, beside a running relay). Synchronous
 * file calls only: in the relay this code runs in the Worker.
 *
 * Tables:
 * - `messages`: one row per queued message: `envelope` (JSON), `body` (the
 *   message bytes, or NULL when they are in `bodies/<id>`: larger than
 *   {@link BODY_FILE_BYTES}), `size`, `created` (ms), `state` (delivery
 *   state JSON, NULL before the first attempt), `next_attempt` (ms, NULL:
 *   now);
 * - `requests`: what `relay queue` asks a running relay (`retry` of an id or
 *   `ALL`; `deleted`: forget the id's retry timer);
 * - `meta`: the readiness probe's row.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import { isQueueId } from "../mail/envelope.ts";

/** Messages larger than this keep their bytes in a file of their own (`bodies/<id>`). */
export const BODY_FILE_BYTES = 256 * 1024;

/** The database's file name inside the spool directory. */
export const DATABASE_FILE = "spool.db";

/** How long a connection waits for another's write lock (`relay queue` beside the relay). */
export const BUSY_TIMEOUT_MS = 5000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY NOT NULL,
  envelope TEXT NOT NULL,
  body BLOB,
  size INTEGER NOT NULL,
  created INTEGER NOT NULL,
  state TEXT,
  next_attempt INTEGER
);
CREATE TABLE IF NOT EXISTS requests (
  n INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY NOT NULL, v TEXT);
`;

/** `id` when it is a queue id: paths built from it cannot leave their folder. */
export function checkedId(id: string): string {
  if (!isQueueId(id)) throw new Error(`not a queue id: ${JSON.stringify(id).slice(0, 40)}`);
  return id;
}

/** Where a large message's bytes are. */
export function bodyPath(dir: string, id: string): string {
  return join(dir, "bodies", checkedId(id));
}

/**
 * Opens the spool database in `dir`. The writer (`create`) creates the
 * schema and turns WAL on; readers expect both.
 */
export function openDatabase(
  dir: string,
  options: { create?: boolean; readOnly?: boolean } = {},
): DatabaseSync {
  const path = join(dir, DATABASE_FILE);
  if (options.create) {
    // Owner only, like the mail in it: SQLite gives the -wal and -shm files the same mode.
    Deno.openSync(path, { create: true, write: true, mode: 0o600 }).close();
  }
  const db = new DatabaseSync(path, {
    readOnly: options.readOnly ?? false,
    open: true,
  });
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (options.create) {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(SCHEMA);
    }
    // Every commit is durable before it returns: the WAL is fsync'd.
    db.exec("PRAGMA synchronous = FULL");
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** A write the writer applies inside its current transaction. */
export type WriteRequest =
  | {
    op: "insert";
    id: string;
    envelope: string;
    /** The bytes, or null when they are already durable in `bodies/<id>`. */
    body: Uint8Array | null;
    size: number;
    created: number;
    state: string | null;
    next: number | null;
  }
  | { op: "state"; id: string; state: string; next: number }
  | { op: "delete"; id: string }
  | { op: "request"; kind: "retry" | "deleted"; id: string }
  | { op: "delete-and-tell"; id: string }
  | { op: "requests-done"; upTo: number }
  | { op: "probe"; at: number };

/**
 * Whether the answer to a request promises the write is on disk: everything
 * but the removal of a delivered message and a deferral's new state, whose
 * fsync may wait for the next durable commit (see spool_worker.ts).
 */
export function needsFsync(request: WriteRequest): boolean {
  return request.op !== "delete" && request.op !== "state";
}

/** The writer's answer to one request. */
export interface WriteResult {
  seq: number;
  ok: boolean;
  /** See {@link Writes.apply}. */
  value?: boolean;
  /** An insert's bytes, handed back (transferred). */
  body?: Uint8Array;
  /** The ids an import found. */
  ids?: string[];
  error?: string;
  /** The disk is full (SQLITE_FULL, ENOSPC). */
  full?: boolean;
}

/** Prepared statements of a writing connection. */
export class Writes {
  readonly #db: DatabaseSync;
  readonly #dir: string;
  #insert: StatementSync;
  #state: StatementSync;
  #delete: StatementSync;
  #request: StatementSync;
  #requestsDone: StatementSync;
  #probe: StatementSync;

  /** @param db a connection opened with `create` @param dir the spool directory */
  constructor(db: DatabaseSync, dir: string) {
    this.#db = db;
    this.#dir = dir;
    this.#insert = db.prepare(
      "INSERT INTO messages (id, envelope, body, size, created, state, next_attempt) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#state = db.prepare("UPDATE messages SET state = ?, next_attempt = ? WHERE id = ?");
    // One statement per removal: what it removed says whether a body file goes too.
    this.#delete = db.prepare("DELETE FROM messages WHERE id = ? RETURNING body IS NULL AS file");
    this.#request = db.prepare("INSERT INTO requests (kind, id) VALUES (?, ?)");
    this.#requestsDone = db.prepare("DELETE FROM requests WHERE n <= ?");
    this.#probe = db.prepare("INSERT OR REPLACE INTO meta (k, v) VALUES ('probe', ?)");
  }

  /**
   * Applies one request in the open transaction. Body files of deleted
   * messages go to `unlinkAfterCommit` (removed once the delete is durable).
   *
   * @returns for `state`, `delete` and `delete-and-tell`: whether the message was there
   */
  apply(request: WriteRequest, unlinkAfterCommit: string[]): boolean {
    switch (request.op) {
      case "insert":
        this.#insert.run(
          checkedId(request.id),
          request.envelope,
          request.body,
          request.size,
          request.created,
          request.state,
          request.next,
        );
        return true;
      case "state":
        return this.#state.run(request.state, request.next, checkedId(request.id)).changes > 0;
      case "delete":
      case "delete-and-tell": {
        const row = this.#delete.get(checkedId(request.id)) as { file: number } | undefined;
        if (!row) return false;
        if (row.file) unlinkAfterCommit.push(bodyPath(this.#dir, request.id));
        if (request.op === "delete-and-tell") this.#request.run("deleted", request.id);
        return true;
      }
      case "request":
        if (request.id !== "ALL") checkedId(request.id);
        this.#request.run(request.kind, request.id);
        return true;
      case "requests-done":
        this.#requestsDone.run(request.upTo);
        return true;
      case "probe":
        this.#probe.run(String(request.at));
        return true;
    }
  }

  /** Runs `requests` in one transaction (the direct writer of `relay queue`). */
  transaction(requests: WriteRequest[]): boolean[] {
    const unlink: string[] = [];
    this.#db.exec("BEGIN IMMEDIATE");
    let results: boolean[];
    try {
      results = requests.map((r) => this.apply(r, unlink));
      this.#db.exec("COMMIT");
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
    removeFiles(unlink);
    return results;
  }
}

/** Removes files, ignoring those already gone. */
export function removeFiles(paths: string[]): void {
  for (const path of paths) {
    try {
      Deno.removeSync(path);
    } catch { /* gone already; an orphan is removed at the next open */ }
  }
}

/** Whether a SQLite or file-system error means the disk (or a quota) is full. */
export function isFullError(error: unknown): boolean {
  const e = error as { code?: unknown; errcode?: unknown } | null;
  // SQLITE_FULL is 13 (extended codes keep it in the low byte); a failed COMMIT carries
  // only SQLite's message.
  return e?.code === "ENOSPC" || e?.code === "EDQUOT" ||
    (typeof e?.errcode === "number" && (e.errcode & 0xff) === 13) ||
    /No space left on device|os error 28|database or disk is full/.test(
      String((error as Error)?.message),
    );
}

/**
 * Removes what a crash can leave behind: body files without a row (a
 * message that never got its 250, or whose delete committed just before).
 * Only at open, when no commit is in flight.
 */
export function removeOrphanBodies(db: DatabaseSync, dir: string): number {
  const has = db.prepare("SELECT 1 FROM messages WHERE id = ?");
  let removed = 0;
  for (const entry of Deno.readDirSync(join(dir, "bodies"))) {
    if (!entry.isFile || (isQueueId(entry.name) && has.get(entry.name))) continue;
    removeFiles([join(dir, "bodies", entry.name)]);
    removed++;
  }
  return removed;
}

const decoder = new TextDecoder();

/**
 * Imports the spool of earlier versions (a file per message:
 * `queue/<id>.msg`, one line of envelope JSON then the bytes, beside an
 * optional `queue/<id>.state`; `flush/<id|ALL>` retry markers). Keyed by
 * id and idempotent: a message already in the database is not imported
 * again. Files are removed only after the import committed, and the removal
 * is synced before this returns, so a crash at any point imports each
 * message once.
 *
 * @returns the ids imported
 */
export function importLegacySpool(db: DatabaseSync, dir: string): string[] {
  const queueDir = join(dir, "queue");
  let names: string[];
  try {
    names = [...Deno.readDirSync(queueDir)].filter((e) => e.isFile).map((e) => e.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const has = db.prepare("SELECT 1 FROM messages WHERE id = ?");
  const writes = new Writes(db, dir);
  const imported: string[] = [];
  const done: string[] = [];
  for (const name of names) {
    const dot = name.indexOf(".");
    const id = name.slice(0, dot);
    const ext = name.slice(dot);
    if (!isQueueId(id)) continue;
    if (ext === ".state.tmp") done.push(join(queueDir, name));
    if (ext !== ".msg") continue;
    const files = [join(queueDir, name), join(queueDir, `${id}.state`)];
    if (has.get(id)) {
      done.push(...files);
      continue;
    }
    const bytes = Deno.readFileSync(files[0]);
    const lf = bytes.indexOf(10);
    if (lf === -1) continue; // not a spool file: left for the operator
    const envelopeText = decoder.decode(bytes.subarray(0, lf));
    const envelope = JSON.parse(envelopeText) as { v?: number; receivedAt?: string };
    if (envelope.v !== 1) continue;
    const body = bytes.subarray(lf + 1);
    let state: string | null = null;
    let next: number | null = null;
    try {
      state = Deno.readTextFileSync(files[1]);
      next = Date.parse(JSON.parse(state).nextAttempt) || null;
    } catch {
      state = null; // none (never tried), or torn: the message is tried afresh
    }
    if (body.length > BODY_FILE_BYTES) writeDurably(bodyPath(dir, id), body);
    writes.transaction([{
      op: "insert",
      id,
      envelope: envelopeText,
      body: body.length > BODY_FILE_BYTES ? null : body,
      size: body.length,
      created: Date.parse(envelope.receivedAt ?? "") || Date.now(),
      state,
      next,
    }]);
    imported.push(id);
    done.push(...files);
  }
  // Retry requests of the old `relay queue retry`.
  const flush = join(dir, "flush");
  try {
    for (const entry of Deno.readDirSync(flush)) {
      if (entry.name === "ALL" || isQueueId(entry.name)) {
        writes.transaction([{ op: "request", kind: "retry", id: entry.name }]);
      }
      done.push(join(flush, entry.name));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (done.length > 0) {
    removeFiles(done);
    syncDirSync(queueDir);
  }
  return imported;
}

/** Writes a file and fsyncs it and its directory. */
export function writeDurably(path: string, data: Uint8Array): void {
  const file = Deno.openSync(path, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    for (let at = 0; at < data.length;) at += file.writeSync(data.subarray(at));
    file.syncDataSync();
  } finally {
    file.close();
  }
  syncDirSync(join(path, ".."));
}

function syncDirSync(path: string): void {
  const dir = Deno.openSync(path, { read: true });
  try {
    dir.syncSync();
  } finally {
    dir.close();
  }
}
