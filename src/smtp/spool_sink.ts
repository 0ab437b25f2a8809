/**
 * The spool strategy of the message sink: the message is written to the
 * spool while it arrives and committed (its transaction durable in the
 * spool database) before the client hears `250`; then it is handed to the
 * queue in memory.
 *
 * @module
 */
import type { Envelope } from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import {
  type DeliveryState,
  type Spool,
  type SpooledMessage,
  SpoolFullError,
  type SpoolWriter,
} from "../queue/mod.ts";
import { Replies, type SmtpReply } from "./replies.ts";
import type { MessageSink, SinkResult, SinkTransaction } from "./sink.ts";

const logger = log("smtp");

/** Options for {@link SpoolSink}. */
export interface SpoolSinkOptions {
  spool: Spool;
  /**
   * Hands a committed message to delivery; `hasState` when its delivery
   * state was committed with it (pass-through, partly relayed); `message`
   * when its bytes are still in memory (delivery need not read them back).
   */
  handoff: Handoff;
}

/** See {@link SpoolSinkOptions.handoff}. */
export type Handoff = (id: string, hasState: boolean, message: SpooledMessage | null) => void;

/** The reply for a spool commit that failed. */
export function spoolFailureReply(error: unknown): SmtpReply {
  return error instanceof SpoolFullError ? Replies.spoolFull() : Replies.spoolFailure();
}

/** Queues every message in the spool. */
export class SpoolSink implements MessageSink {
  readonly #o: SpoolSinkOptions;

  /** @param options the spool and the hand-off to delivery */
  constructor(options: SpoolSinkOptions) {
    this.#o = options;
  }

  /** Starts writing one message to the spool. */
  begin(envelope: Envelope): SinkTransaction {
    const writer = this.#o.spool.begin(envelope);
    const handoff = this.#o.handoff;
    return {
      write: (bytes) => writer.write(bytes),
      drain: () => writer.drain(),
      abort: () => writer.abort().catch(() => {}),
      commit: () => commitToSpool(writer, handoff),
    };
  }
}

/**
 * Commits `writer` (with `state` when given) and hands the message on.
 * A failure leaves nothing queued and answers `451 4.3.0` (`452 4.3.1`
 * when the disk is full).
 */
export async function commitToSpool(
  writer: SpoolWriter,
  handoff: Handoff,
  state?: DeliveryState,
): Promise<SinkResult> {
  try {
    await writer.commit(state ? { state } : {});
  } catch (error) {
    logger.error("{id}: spool write failed, client told to retry: {error}", {
      id: writer.id,
      error: String(error instanceof SpoolFullError ? error.cause : error),
    });
    return { reply: spoolFailureReply(error), accepted: false };
  }
  handoff(writer.id, state !== undefined, writer.takeCommitted());
  return { reply: Replies.queued(writer.id), accepted: true, queued: writer.id };
}
