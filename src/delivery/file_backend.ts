/**
 * The `file:` backend for development and tests: each message becomes
 * `<dir>/<id>.eml` (the bytes exactly as queued) beside `<dir>/<id>.json`
 * (its envelope). Both are fsync'd before the spool lets go of the message.
 *
 * @module
 */
import {
  DirectorySync,
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

  private constructor(dir: string) {
    this.#dir = dir;
    this.#dirSync = new DirectorySync(dir);
  }

  /** Opens (creating) the outbox folder. */
  static async open(dir: string): Promise<FileBackend> {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    return new FileBackend(dir);
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
    await writeFileDurably(join(this.#dir, `${envelope.id}.eml`), data);
    await writeFileDurably(
      join(this.#dir, `${envelope.id}.json`),
      encoder.encode(JSON.stringify(meta, null, 2) + "\n"),
    );
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
