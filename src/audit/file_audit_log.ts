/**
 * JSON-lines audit file: events are buffered off the hot path and appended
 * at least once a second, and on close. A write failure is reported loudly
 * (once per outage) on the logger rather than silently dropped.
 *
 * @module
 */
import { dirname } from "node:path";
import { log } from "../observability/logger.ts";
import type { AuditEvent, AuditLog } from "./audit_log.ts";

const logger = log("audit");
const encoder = new TextEncoder();

/** Options for {@link FileAuditLog}. */
export interface FileAuditLogOptions {
  /** The file to append to; its folder is created. */
  path: string;
  /** Milliseconds between background flushes. */
  flushIntervalMs?: number;
  /** Buffered events above which a flush starts at once. */
  maxBuffered?: number;
  /** Clock for timestamps. */
  now?: () => Date;
}

/** Appends audit events to a JSON-lines file. */
export class FileAuditLog implements AuditLog {
  #path: string;
  #buffer: string[] = [];
  #file: Deno.FsFile | null = null;
  #timer: ReturnType<typeof setInterval>;
  #writing: Promise<void> = Promise.resolve();
  #maxBuffered: number;
  #now: () => Date;
  #failing = false;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile, options: FileAuditLogOptions) {
    this.#path = path;
    this.#file = file;
    this.#maxBuffered = options.maxBuffered ?? 1000;
    this.#now = options.now ?? (() => new Date());
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
  }

  /** Opens (creating) the audit file; fails loudly when it cannot be written. */
  static async open(options: FileAuditLogOptions): Promise<FileAuditLog> {
    await Deno.mkdir(dirname(options.path), { recursive: true });
    const file = await Deno.open(options.path, {
      append: true,
      create: true,
      write: true,
      mode: 0o600,
    });
    return new FileAuditLog(options.path, file, options);
  }

  record(event: AuditEvent): void {
    if (this.#closed) return;
    this.#buffer.push(JSON.stringify({ ts: this.#now().toISOString(), ...event }));
    if (this.#buffer.length >= this.#maxBuffered) void this.flush();
  }

  flush(): Promise<void> {
    if (this.#buffer.length === 0) return this.#writing;
    const lines = this.#buffer.join("\n") + "\n";
    this.#buffer = [];
    this.#writing = this.#writing.then(async () => {
      const file = this.#file;
      if (!file) return;
      try {
        const data = encoder.encode(lines);
        let offset = 0;
        while (offset < data.length) offset += await file.write(data.subarray(offset));
        if (this.#failing) logger.warn("audit file {path} is writable again", { path: this.#path });
        this.#failing = false;
      } catch (error) {
        if (!this.#failing) {
          logger.error("cannot write audit file {path}: {error}", {
            path: this.#path,
            error: String(error),
          });
        }
        this.#failing = true;
      }
    });
    return this.#writing;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    await this.flush();
    this.#closed = true;
    this.#file?.close();
    this.#file = null;
  }
}
