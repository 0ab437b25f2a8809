/**
 * JSON-lines audit file with rotation. Events are serialized (and redacted)
 * when recorded, buffered off the hot path, and appended at least once a
 * second, when the buffer fills, and on close; each batch is `fdatasync`ed.
 *
 * Rotation renames `audit.jsonl` to `audit.jsonl.1` (`.1` to `.2`, and so on;
 * the oldest beyond `maxFiles` is deleted) before a write would take the file
 * past `maxBytes`, and, with `rotateDaily`, at the first write of a new UTC
 * day. A line is never split across files.
 *
 * A failed write (full disk, unwritable or vanished file or folder) is
 * reported loudly: one `logger.error` per outage, the lost events counted in
 * {@linkcode FileAuditLog.stats}, {@linkcode FileAuditLog.healthy} false. The
 * file is reopened and retried every interval even when no event comes; the
 * first successful write starts with an `audit_gap` line saying how many
 * events were lost since when. A file renamed or deleted behind our back (an
 * external logrotate) is noticed and recreated at the next write.
 *
 * @module
 */
import { dirname } from "node:path";
import type { Logger } from "@logtape/logtape";
import { log } from "../observability/logger.ts";
import { isoTimeFormatter } from "../observability/iso_time.ts";
import { type AuditEvent, type AuditLog, serializeAuditEvent } from "./audit_log.ts";

const encoder = new TextEncoder();
const ROTATION_RETRY_MS = 60_000;

/** Options for {@linkcode FileAuditLog.open}. */
export interface FileAuditLogOptions {
  /** The file to append to; its folder is created. */
  path: string;
  /** Rotate before the file would grow past this many bytes; 0: never by size. Default 100 MiB. */
  maxBytes?: number;
  /** Rotated files kept (`<path>.1` newest ... `<path>.<maxFiles>`); 0 keeps none. Default 10. */
  maxFiles?: number;
  /** Also rotate at the first write of each UTC day. Default false. */
  rotateDaily?: boolean;
  /**
   * The relay must not accept mail while the trail cannot be written; also
   * makes {@linkcode FileAuditLog.open} fail when the file cannot be opened.
   */
  required?: boolean;
  /** Milliseconds between background flushes (and retries while failing). Default 1000. */
  flushIntervalMs?: number;
  /** Buffered events above which a flush starts at once. Default 1000. */
  maxBuffered?: number;
  /** Buffered events above which new ones are dropped (a write that hangs). Default 100,000. */
  maxQueued?: number;
  /** Clock for timestamps and daily rotation. */
  now?: () => Date;
  /** Where outages are reported; default the `["relay","audit"]` category. */
  logger?: Logger;
}

/** Counters of a {@linkcode FileAuditLog}, for metrics and tests. */
export interface AuditStats {
  /** Events handed to `record()`. */
  recorded: number;
  /** Events written to the file. */
  written: number;
  /** Events lost: failed writes, a full buffer, or recorded after close. */
  dropped: number;
  /** Failed write or open attempts. */
  writeErrors: number;
  /** Rotations done. */
  rotations: number;
  /** Times the trail became unwritable. */
  outages: number;
}

/** Appends audit events to a JSON-lines file, rotating it by size and day. */
export class FileAuditLog implements AuditLog {
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  readonly #rotateDaily: boolean;
  readonly #required: boolean;
  readonly #maxBuffered: number;
  readonly #maxQueued: number;
  readonly #now: () => Date;
  /** The clock in milliseconds: `Date.now` unless a clock is given (no `Date` per event). */
  readonly #nowMs: () => number;
  readonly #iso = isoTimeFormatter();
  readonly #logger: Logger;
  readonly #timer: ReturnType<typeof setInterval>;
  #buffer: string[] = [];
  #file: Deno.FsFile | null = null;
  /** Identity of the open file, to notice it being renamed or removed by others. */
  #ino: number | null = null;
  #size = 0;
  /** UTC day (`YYYY-MM-DD`) the open file's content began. */
  #day = "";
  #writing: Promise<void> = Promise.resolve();
  #inFlight = false;
  #healthy = true;
  #outageSince: string | null = null;
  #outageDropped = 0;
  #rotationFailing = false;
  #rotationRetryAt = 0;
  #closed = false;
  #stats: AuditStats = {
    recorded: 0,
    written: 0,
    dropped: 0,
    writeErrors: 0,
    rotations: 0,
    outages: 0,
  };

  private constructor(options: FileAuditLogOptions) {
    this.#path = options.path;
    this.#maxBytes = options.maxBytes ?? 100 * 1024 * 1024;
    this.#maxFiles = options.maxFiles ?? 10;
    this.#rotateDaily = options.rotateDaily ?? false;
    this.#required = options.required ?? false;
    this.#maxBuffered = options.maxBuffered ?? 1000;
    this.#maxQueued = Math.max(options.maxQueued ?? 100_000, this.#maxBuffered);
    const now = options.now;
    this.#now = now ?? (() => new Date());
    this.#nowMs = now ? () => now().getTime() : Date.now;
    this.#logger = options.logger ?? log("audit");
    this.#timer = setInterval(() => {
      if (!this.#inFlight) void this.flush();
    }, options.flushIntervalMs ?? 1000);
    Deno.unrefTimer(this.#timer);
  }

  /**
   * Opens (creating, mode 0600) the audit file and its folder.
   *
   * @param options The file, rotation and failure policy.
   * @returns The running log; close it at shutdown.
   * @throws {Error} Only when `required` and the file cannot be opened. Otherwise
   *   the failure is logged, the log starts unhealthy and keeps retrying.
   */
  static async open(options: FileAuditLogOptions): Promise<FileAuditLog> {
    const audit = new FileAuditLog(options);
    try {
      await audit.#ensureOpen();
    } catch (error) {
      if (audit.#required) {
        await audit.close();
        throw new Error(`cannot open audit file ${options.path}: ${reason(error)}`, {
          cause: error,
        });
      }
      audit.#failed(error, 0);
    }
    return audit;
  }

  /** False while events cannot be written; see {@linkcode AuditLog.healthy}. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Whether mail must be refused while not {@linkcode FileAuditLog.healthy}. */
  get required(): boolean {
    return this.#required;
  }

  /** The audit file's path. */
  get path(): string {
    return this.#path;
  }

  /** A copy of the counters. */
  get stats(): AuditStats {
    return { ...this.#stats };
  }

  /** Buffers the event as a JSON line (`ts` first, secrets redacted); never throws. */
  record(event: AuditEvent): void {
    this.#stats.recorded++;
    if (this.#closed) {
      this.#stats.dropped++;
      return;
    }
    if (this.#buffer.length >= this.#maxQueued) {
      // Writes are not keeping up (a hung disk): drop rather than grow without bound.
      this.#lose(1);
      this.#enterOutage(new Error(`${this.#buffer.length} events wait for a write that hangs`), 1);
      return;
    }
    this.#buffer.push(serializeAuditEvent(event, this.#iso(this.#nowMs())));
    if (this.#buffer.length >= this.#maxBuffered && !this.#inFlight) void this.flush();
  }

  /** Writes out everything buffered so far (and retries a failing file); never rejects. */
  flush(): Promise<void> {
    this.#inFlight = true;
    const run = this.#writing.then(() => this.#drain()).finally(() => {
      if (this.#writing !== run) return;
      this.#inFlight = false;
      // Events that piled up during a slow write go out now, not at the next tick.
      if (this.#buffer.length >= this.#maxBuffered && !this.#closed) void this.flush();
    });
    this.#writing = run;
    return run;
  }

  /** Flushes everything and releases the file; later events are counted as dropped. */
  async close(): Promise<void> {
    if (this.#closed) {
      await this.#writing;
      return;
    }
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flush();
    this.#closeFile();
  }

  async #drain(): Promise<void> {
    const lines = this.#buffer;
    this.#buffer = [];
    if (lines.length === 0 && this.#healthy) return;
    if (this.#closed && this.#file === null && lines.length === 0) return;
    let pending = lines.length;
    try {
      await this.#ensureOpen();
      if (!this.#healthy) {
        // The first line after an outage says what is missing (it also probes the disk).
        await this.#append([
          JSON.stringify({
            ts: this.#now().toISOString(),
            event: "audit_gap",
            dropped: this.#outageDropped,
            since: this.#outageSince,
          }),
        ]);
        this.#recovered();
      }
      await this.#append(lines, (written) => {
        this.#stats.written += written;
        pending -= written;
      });
      await this.#file?.syncData();
    } catch (error) {
      this.#failed(error, pending);
    }
  }

  /** Appends lines, rotating first when due; `progress` hears of each chunk written. */
  async #append(lines: string[], progress?: (written: number) => void): Promise<void> {
    if (lines.length === 0) return;
    if (
      this.#rotateDaily && this.#size > 0 && this.#day !== utcDay(this.#now()) &&
      this.#mayRotate()
    ) {
      await this.#rotate();
    }
    let chars = 0;
    for (const line of lines) chars += line.length + 1;
    if (this.#maxBytes === 0 || this.#size + 3 * chars <= this.#maxBytes) {
      // Cannot reach the size limit even if every character took 3 bytes: one encode, one write.
      await this.#writeBytes(encoder.encode(lines.join("\n") + "\n"));
      progress?.(lines.length);
      return;
    }
    let chunk: Uint8Array[] = [];
    let chunkBytes = 0;
    for (const line of lines) {
      const bytes = encoder.encode(line + "\n");
      const full = this.#maxBytes > 0 && this.#size + chunkBytes > 0 &&
        this.#size + chunkBytes + bytes.length > this.#maxBytes && this.#mayRotate();
      if (full) {
        await this.#write(chunk, chunkBytes);
        progress?.(chunk.length);
        chunk = [];
        chunkBytes = 0;
        if (this.#size > 0) await this.#rotate();
      }
      chunk.push(bytes);
      chunkBytes += bytes.length;
    }
    await this.#write(chunk, chunkBytes);
    progress?.(chunk.length);
  }

  async #write(chunk: Uint8Array[], length: number): Promise<void> {
    if (chunk.length === 0) return;
    const data = new Uint8Array(length);
    let at = 0;
    for (const part of chunk) {
      data.set(part, at);
      at += part.length;
    }
    await this.#writeBytes(data);
  }

  async #writeBytes(data: Uint8Array): Promise<void> {
    const file = this.#file;
    if (file === null) throw new Error("audit file is not open");
    const start = this.#size;
    let offset = 0;
    try {
      while (offset < data.length) offset += await file.write(data.subarray(offset));
    } catch (error) {
      // Take back a partly written line, so the next successful write starts on a fresh line.
      if (offset > 0) await file.truncate(start).catch(() => {});
      throw error;
    }
    this.#size += data.length;
  }

  /** Opens the file when it is not open or no longer the one at the path. */
  async #ensureOpen(): Promise<void> {
    if (this.#file !== null) {
      let ino: number | null = null;
      try {
        ino = (await Deno.stat(this.#path)).ino;
      } catch {
        // Gone (or its folder is): recreate below.
      }
      if (ino !== null && ino === this.#ino) return;
      this.#closeFile();
    }
    await Deno.mkdir(dirname(this.#path), { recursive: true });
    const file = await Deno.open(this.#path, {
      append: true,
      create: true,
      write: true,
      mode: 0o600,
    });
    try {
      const info = await file.stat();
      this.#ino = info.ino;
      this.#size = info.size;
      this.#day = utcDay(info.size > 0 && info.mtime ? info.mtime : this.#now());
    } catch (error) {
      file.close();
      throw error;
    }
    this.#file = file;
  }

  async #rotate(): Promise<void> {
    this.#closeFile();
    try {
      if (this.#maxFiles === 0) {
        await Deno.remove(this.#path);
      } else {
        for (let i = this.#maxFiles - 1; i >= 1; i--) {
          await Deno.rename(`${this.#path}.${i}`, `${this.#path}.${i + 1}`).catch((error) => {
            if (!(error instanceof Deno.errors.NotFound)) throw error;
          });
        }
        await Deno.rename(this.#path, `${this.#path}.1`);
      }
      this.#stats.rotations++;
      if (this.#rotationFailing) {
        this.#logger.warn("audit file {path} rotates again", { path: this.#path });
      }
      this.#rotationFailing = false;
    } catch (error) {
      this.#rotationRetryAt = this.#now().getTime() + ROTATION_RETRY_MS;
      // Writing on past the limit beats losing events; say so once.
      if (!this.#rotationFailing) {
        this.#logger.error(
          "cannot rotate audit file {path}: {error}; it keeps growing past the limit",
          { path: this.#path, error: reason(error) },
        );
      }
      this.#rotationFailing = true;
    }
    await this.#ensureOpen();
  }

  /** Rotation is not retried for a while after it failed (not once per line). */
  #mayRotate(): boolean {
    return !this.#rotationFailing || this.#now().getTime() >= this.#rotationRetryAt;
  }

  #closeFile(): void {
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = null;
    this.#ino = null;
  }

  #failed(error: unknown, lost: number): void {
    this.#stats.writeErrors++;
    this.#lose(lost);
    // Reopen on the next attempt: the disk, the file or its folder may come back.
    this.#closeFile();
    this.#enterOutage(error, lost);
  }

  #lose(count: number): void {
    this.#stats.dropped += count;
    this.#outageDropped += count;
  }

  /** Marks the trail unwritable; logs only the first failure of an outage. */
  #enterOutage(error: unknown, lost: number): void {
    if (!this.#healthy) return;
    this.#healthy = false;
    this.#outageSince = this.#now().toISOString();
    this.#stats.outages++;
    this.#logger.error(
      this.#required
        ? "AUDIT TRAIL DOWN: cannot write {path}: {error}. Audit events are dropped and new mail is refused until it is writable"
        : "AUDIT TRAIL DOWN: cannot write {path}: {error}. Audit events are dropped until it is writable; mail still flows",
      { path: this.#path, error: reason(error), dropped: lost },
    );
  }

  #recovered(): void {
    this.#logger.warn(
      "audit file {path} is writable again; {dropped} events were lost since {since}",
      { path: this.#path, dropped: this.#outageDropped, since: this.#outageSince },
    );
    this.#healthy = true;
    this.#outageSince = null;
    this.#outageDropped = 0;
  }
}

function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
