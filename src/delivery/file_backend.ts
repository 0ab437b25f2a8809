/**
 * The `file:` backend for development and tests: each message becomes
 * `<dir>/<id>.eml` (the bytes exactly as queued) beside `<dir>/<id>.json`
 * (its envelope). Both are fsync'd before the spool lets go of the message.
 * The `.json` is renamed into place first and the `.eml` last, so whoever
 * sees an `.eml` can read its `.json`. A failed write (a full disk) leaves
 * neither a `.tmp` file nor a lone `.json` behind.
 *
 * @module
 */
import {
  denoFs,
  DirectorySync,
  type DurableFs,
  type Envelope,
  type RecipientOutcome,
  writeFileDurably,
} from "../mail/mod.ts";
import { join } from "node:path";
import type { DeliveryBackend } from "./backend.ts";

const encoder = new TextEncoder();

/** Writes messages into a folder. */
export class FileBackend implements DeliveryBackend {
  readonly name = "file";
  #dir: string;
  #dirSync: DirectorySync;
  #fs: DurableFs;

  private constructor(dir: string, fs: DurableFs) {
    this.#dir = dir;
    this.#dirSync = new DirectorySync(dir);
    this.#fs = fs;
  }

  /** Opens (creating) the outbox folder; `fs` replaces the file system (tests). */
  static async open(dir: string, options: { fs?: DurableFs } = {}): Promise<FileBackend> {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    return new FileBackend(dir, options.fs ?? denoFs);
  }

  /** Folder the messages go to. */
  get dir(): string {
    return this.#dir;
  }

  async deliver(
    envelope: Envelope,
    data: Uint8Array,
    recipients: string[],
  ): Promise<RecipientOutcome[]> {
    const meta = { ...envelope, recipients, deliveredAt: new Date().toISOString() };
    const json = join(this.#dir, `${envelope.id}.json`);
    await writeFileDurably(json, encoder.encode(JSON.stringify(meta, null, 2) + "\n"), this.#fs);
    try {
      await writeFileDurably(join(this.#dir, `${envelope.id}.eml`), data, this.#fs);
    } catch (error) {
      await this.#fs.remove(json).catch(() => {});
      throw error;
    }
    await this.#dirSync.sync();
    return recipients.map((recipient) => ({
      recipient,
      status: "delivered",
      reply: `250 2.0.0 written to ${this.#dir}`,
    }));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
