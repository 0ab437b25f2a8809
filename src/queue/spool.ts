/**
 * The durable spool (Postfix's cleanup + queue files). A message is written
 * to `tmp/`, fsync'd, renamed into `queue/` and the directory fsync'd before
 * the client hears `250`. Directory syncs of concurrent commits are grouped.
 *
 * File format (`queue/<id>.msg`): one line of JSON (the {@link Envelope}),
 * LF, then the message bytes exactly as received (after dot-unstuffing),
 * starting with our Received: header. The file never changes once
 * committed; delivery progress lives beside it (see `queue/` for state).
 *
 * @module
 */
import { join } from "node:path";
import { DirectorySync, type Envelope, isQueueId, writeFileDurably } from "../mail/mod.ts";

/** A committed message read back from the spool. */
export interface SpooledMessage {
  envelope: Envelope;
  /** The message bytes (headers and body, CRLF line ends). */
  data: Uint8Array;
}

/** Bytes buffered in memory before a message spills to its file. */
const SPILL_BYTES = 128 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

function joinChunks(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Writes one message into the spool; created by {@link Spool.begin}. */
export class SpoolWriter {
  #spool: Spool;
  #envelope: Envelope;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #size = 0;
  #file: Deno.FsFile | null = null;
  #flushing: Promise<void> = Promise.resolve();
  #failed: unknown = null;
  #done = false;
  #committed: Uint8Array | null = null;

  /** @internal use {@link Spool.begin} */
  constructor(spool: Spool, envelope: Envelope) {
    this.#spool = spool;
    this.#envelope = envelope;
  }

  /** Queue id of this message. */
  get id(): string {
    return this.#envelope.id;
  }

  /** Message bytes written so far. */
  get size(): number {
    return this.#size;
  }

  get #tmpPath(): string {
    return join(this.#spool.dir, "tmp", this.#envelope.id);
  }

  /** Appends message bytes; spills to disk in the background past a threshold. */
  write(bytes: Uint8Array): void {
    if (this.#done) throw new Error("spool writer already finished");
    this.#chunks.push(bytes);
    this.#buffered += bytes.length;
    this.#size += bytes.length;
    if (this.#buffered >= SPILL_BYTES) this.#spill();
  }

  /** Resolves when background writes have caught up (back-pressure for DATA). */
  drain(): Promise<void> | undefined {
    return this.#buffered === 0 && this.#file !== null ? undefined : this.#flushing;
  }

  #header(): Uint8Array {
    return encoder.encode(JSON.stringify(this.#envelope) + "\n");
  }

  #takeBuffered(): Uint8Array {
    const data = joinChunks(this.#chunks, this.#buffered);
    this.#chunks = [];
    this.#buffered = 0;
    return data;
  }

  #spill(): void {
    const data = this.#takeBuffered();
    this.#flushing = this.#flushing.then(async () => {
      if (this.#failed) return;
      try {
        if (!this.#file) {
          this.#file = await Deno.open(this.#tmpPath, {
            write: true,
            createNew: true,
            mode: 0o600,
          });
          await writeAll(this.#file, this.#header());
        }
        await writeAll(this.#file, data);
      } catch (error) {
        this.#failed = error;
      }
    });
  }

  /**
   * Makes the message durable: data fsync'd, file renamed into `queue/`,
   * directory fsync'd. Only after this resolves may the client hear 250.
   *
   * `state`, when given, is the message's delivery state (recipients a
   * pass-through relay already finished); it is written durably *before*
   * the message appears in `queue/`, so no reader ever sees the message
   * without it: committing both is one step for the queue.
   *
   * On failure nothing stays behind (the message is unlinked from `queue/`
   * again if the rename happened), so the client's retry cannot make a
   * duplicate. A full disk rejects with a {@link SpoolFullError}.
   */
  async commit(options: { state?: Uint8Array } = {}): Promise<void> {
    if (this.#done) throw new Error("spool writer already finished");
    this.#done = true;
    const spool = this.#spool;
    const id = this.#envelope.id;
    let renamed = false;
    let stateWritten = false;
    try {
      if (this.#file) {
        this.#spill();
        await this.#flushing;
        if (this.#failed) throw this.#failed;
      } else {
        // Small message: header and body in one write. open and rename stay
        // async: while another commit's fsync holds the ext4 journal they can
        // block for milliseconds (measured: a sync open took 29% of the loop).
        const header = this.#header();
        const body = this.#takeBuffered();
        const all = new Uint8Array(header.length + body.length);
        all.set(header, 0);
        all.set(body, header.length);
        this.#file = await Deno.open(this.#tmpPath, { write: true, createNew: true, mode: 0o600 });
        await writeAll(this.#file, all);
        this.#committed = all.subarray(header.length);
      }
      await this.#file.syncData();
      this.#file.close();
      this.#file = null;
      spool.committing.add(id);
      if (options.state) {
        await writeFileDurably(spool.statePath(id), options.state);
        stateWritten = true;
      }
      await Deno.rename(this.#tmpPath, spool.messagePath(id));
      renamed = true;
      await spool.queueDirSync.sync();
    } catch (error) {
      // Take back what became visible: a message the client was told to retry
      // must not be delivered too.
      if (renamed) await removeIfPresent(spool.messagePath(id)).catch(() => {});
      if (stateWritten) await removeIfPresent(spool.statePath(id)).catch(() => {});
      await this.#cleanup();
      throw isDiskFull(error) ? new SpoolFullError(error) : error;
    } finally {
      spool.committing.delete(id);
    }
  }

  /**
   * The committed message as it is in the spool, when it is still in memory
   * (small messages, never spilled to their file): delivery can start from
   * it without reading the file back. Given out once; `null` otherwise.
   */
  takeCommitted(): SpooledMessage | null {
    const data = this.#committed;
    this.#committed = null;
    return data ? { envelope: this.#envelope, data } : null;
  }

  /** Discards the message (client vanished, size exceeded, bad data). */
  async abort(): Promise<void> {
    this.#done = true;
    this.#chunks = [];
    this.#buffered = 0;
    await this.#flushing;
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    try {
      this.#file?.close();
    } catch { /* already closed */ }
    this.#file = null;
    await Deno.remove(this.#tmpPath).catch(() => {});
  }
}

/** Options for {@link Spool.open}. */
export interface SpoolOptions {
  /** How `queue/` is fsync'd (injectable, so tests can make it fail). */
  syncDirectory?: (dir: string) => Promise<void>;
}

/** The spool directory: `tmp/` for messages being written, `queue/` for committed ones. */
export class Spool {
  /** Root directory. */
  readonly dir: string;
  /** Group-committed fsync of `queue/`. */
  readonly queueDirSync: DirectorySync;

  private constructor(dir: string, options: SpoolOptions = {}) {
    this.dir = dir;
    this.queueDirSync = new DirectorySync(join(dir, "queue"), options.syncDirectory);
  }

  /** Opens (creating if needed) a spool directory and clears half-written files. */
  static async open(dir: string, options: SpoolOptions = {}): Promise<Spool> {
    await Deno.mkdir(join(dir, "tmp"), { recursive: true, mode: 0o700 });
    await Deno.mkdir(join(dir, "queue"), { recursive: true, mode: 0o700 });
    // Anything in tmp/ never got a 250: the client will retry it.
    for await (const entry of Deno.readDir(join(dir, "tmp"))) {
      await Deno.remove(join(dir, "tmp", entry.name)).catch(() => {});
    }
    return new Spool(dir, options);
  }

  /**
   * Opens an existing spool without touching it (no clean-up of `tmp/`), for
   * tools such as `relay queue` that run beside a live server.
   *
   * @throws {Deno.errors.NotFound} when there is no `queue/` folder
   */
  static async attach(dir: string): Promise<Spool> {
    const info = await Deno.stat(join(dir, "queue"));
    if (!info.isDirectory) throw new Deno.errors.NotFound(`${join(dir, "queue")} is not a folder`);
    return new Spool(dir);
  }

  /**
   * Ids whose commit is in progress: their files may be in `queue/` half
   * done (a state without its message, a message not yet durable). The
   * queue's scan leaves them alone.
   */
  readonly committing: Set<string> = new Set();

  /** Messages read back whole ({@link read}) since the spool was opened (for tests and stats). */
  reads = 0;

  /** Path of a committed message file. */
  messagePath(id: string): string {
    return join(this.dir, "queue", `${this.#checked(id)}.msg`);
  }

  /** `id` when it is a queue id; file names built from input cannot escape `queue/`. */
  #checked(id: string): string {
    if (!isQueueId(id)) throw new Error(`not a queue id: ${JSON.stringify(id).slice(0, 40)}`);
    return id;
  }

  /** Path of a message's delivery-state file (`queue/<id>.state`). */
  statePath(id: string): string {
    return join(this.dir, "queue", `${this.#checked(id)}.state`);
  }

  /** Starts writing a message with this envelope. */
  begin(envelope: Envelope): SpoolWriter {
    if (!isQueueId(envelope.id)) throw new Error("bad queue id");
    return new SpoolWriter(this, envelope);
  }

  /** Whether a committed message with this id is in the queue (false for a non-id). */
  async has(id: string): Promise<boolean> {
    if (!isQueueId(id)) return false;
    try {
      await Deno.stat(this.messagePath(id));
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  /** Ids of every committed message, oldest first. */
  async list(): Promise<string[]> {
    const ids: string[] = [];
    for await (const entry of Deno.readDir(join(this.dir, "queue"))) {
      if (entry.isFile && entry.name.endsWith(".msg")) {
        const id = entry.name.slice(0, -4);
        if (isQueueId(id)) ids.push(id);
      }
    }
    return ids.sort();
  }

  /** Reads a committed message. */
  async read(id: string): Promise<SpooledMessage> {
    this.reads++;
    const bytes = await Deno.readFile(this.messagePath(id));
    return parseSpoolFile(bytes);
  }

  /** Reads only the envelope of a committed message. */
  async readEnvelope(id: string): Promise<Envelope> {
    const file = await Deno.open(this.messagePath(id), { read: true });
    try {
      const buf = new Uint8Array(64 * 1024);
      let filled = 0;
      for (;;) {
        const n = await file.read(buf.subarray(filled));
        if (n === null) break;
        filled += n;
        const lf = buf.subarray(0, filled).indexOf(10);
        if (lf !== -1) return JSON.parse(decoder.decode(buf.subarray(0, lf))) as Envelope;
        if (filled === buf.length) break;
      }
    } finally {
      file.close();
    }
    // An envelope larger than 64 KiB (thousands of recipients): read it all.
    return (await this.read(id)).envelope;
  }

  /** Removes a message once every recipient is done with. */
  async remove(id: string): Promise<void> {
    await removeIfPresent(this.messagePath(id));
  }
}

/** The spool's disk is full (ENOSPC): the client should hear `452 4.3.1`. */
export class SpoolFullError extends Error {
  /** @param cause the file-system error */
  constructor(cause: unknown) {
    super("spool disk full", { cause });
    this.name = "SpoolFullError";
  }
}

/** Whether a file-system error means the disk (or a quota) is full. */
export function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** Splits a spool file into envelope and message bytes. */
export function parseSpoolFile(bytes: Uint8Array): SpooledMessage {
  const lf = bytes.indexOf(10);
  if (lf === -1) throw new Error("spool file has no envelope line");
  const envelope = JSON.parse(decoder.decode(bytes.subarray(0, lf))) as Envelope;
  if (envelope.v !== 1 || !Array.isArray(envelope.recipients)) {
    throw new Error("spool file envelope is not version 1");
  }
  return { envelope, data: bytes.subarray(lf + 1) };
}

/** Encodes a spool file (envelope line, LF, message bytes): the inverse of {@link parseSpoolFile}. */
export function encodeSpoolFile(envelope: Envelope, data: Uint8Array): Uint8Array {
  const header = encoder.encode(JSON.stringify(envelope) + "\n");
  const out = new Uint8Array(header.length + data.length);
  out.set(header, 0);
  out.set(data, header.length);
  return out;
}
