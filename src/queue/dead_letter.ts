/**
 * The dead-letter directory: messages that could be neither delivered nor
 * returned to their sender (the null sender, or a DSN that itself failed).
 * Each becomes `<dir>/<id>.msg` in the spool's own format (so an operator
 * can move it back into `queue/` to retry it) beside `<dir>/<id>.json`, which
 * says which recipients failed and why. Both are fsync'd.
 *
 * @module
 */
import {
  DirectorySync,
  type Envelope,
  isQueueId,
  type RecipientOutcome,
  writeFileDurably,
} from "../mail/mod.ts";
import { join } from "node:path";
import { encodeSpoolFile } from "./spool.ts";

/** What `<id>.json` holds. */
export interface DeadLetterRecord {
  /** Queue id of the message. */
  id: string;
  /** Its envelope sender (`""` for the null sender). */
  from: string;
  /** ISO time of the (latest) failure. */
  failedAt: string;
  /** Why it could not be returned. */
  reason: string;
  /** Every failed recipient so far. */
  recipients: RecipientOutcome[];
}

const encoder = new TextEncoder();

/** Options for {@linkcode writeDeadLetter}. */
export interface WriteDeadLetterOptions {
  /** The dead-letter directory (created when missing). */
  dir: string;
  /** The message's envelope. */
  envelope: Envelope;
  /** The message's bytes. */
  data: Uint8Array;
  /** The recipients that failed in this attempt. */
  failed: RecipientOutcome[];
  /** Why the message is not returned to its sender. */
  reason: string;
  /** When it failed. */
  now: Date;
}

/**
 * Stores a message in the dead-letter directory, adding to the record of an
 * earlier failure of the same message.
 *
 * @returns the path of the `.msg` file
 */
export async function writeDeadLetter(options: WriteDeadLetterOptions): Promise<string> {
  const { dir, envelope } = options;
  if (!isQueueId(envelope.id)) throw new Error("bad queue id");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const msgPath = join(dir, `${envelope.id}.msg`);
  const jsonPath = join(dir, `${envelope.id}.json`);
  let earlier: RecipientOutcome[] = [];
  try {
    earlier = (JSON.parse(await Deno.readTextFile(jsonPath)) as DeadLetterRecord).recipients ?? [];
  } catch {
    // First failure of this message.
  }
  const seen = new Set(options.failed.map((f) => f.recipient));
  const record: DeadLetterRecord = {
    id: envelope.id,
    from: envelope.from,
    failedAt: options.now.toISOString(),
    reason: options.reason,
    recipients: [...earlier.filter((r) => !seen.has(r.recipient)), ...options.failed],
  };
  await writeFileDurably(msgPath, encodeSpoolFile(envelope, options.data));
  await writeFileDurably(jsonPath, encoder.encode(JSON.stringify(record, null, 2) + "\n"));
  await new DirectorySync(dir).sync();
  return msgPath;
}

/** Lists the ids in a dead-letter directory (none when it does not exist). */
export async function listDeadLetters(dir: string): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".msg")) {
        const id = entry.name.slice(0, -4);
        if (isQueueId(id)) ids.push(id);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return ids.sort();
}
