/**
 * The pass-through strategy of the message sink (`relay.mode =
 * "passthrough"`): the message goes to the backend while the client sends
 * it, and a copy is spooled beside it for what the backend does not finish.
 *
 * The backend sees the final dot only at `commit`, after the policy had its
 * last word; `abort` ends the stream with an error, so the backend delivers
 * nothing. At `commit`, per the backend's answer for each recipient:
 *
 * | backend                                | client hears           | spool copy                                   |
 * | -------------------------------------- | ---------------------- | -------------------------------------------- |
 * | every recipient delivered              | the backend's `250`    | dropped                                      |
 * | none delivered, every one refused (5xx)| the backend's 5xx      | dropped                                      |
 * | otherwise (some delivered, deferred...)| `250 queued as ID`     | committed with the delivery state: delivered |
 * |                                        |                        | recipients are done, refused ones bounced    |
 * |                                        |                        | (DSN), deferred ones retried                 |
 * | no answer (connection lost)            | `250 queued as ID`     | committed, every recipient retried           |
 *
 * The delivery state is committed *with* the message, in its row and the
 * same transaction (see `SpoolWriter.commit`): no restart or crash can see
 * the message without it, so a delivered recipient is never sent to again.
 *
 * @module
 */
import { ChunkPipe, type Envelope, type StreamedDelivery } from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import type { DeliveryState, Spool } from "../queue/mod.ts";
import { Replies } from "./replies.ts";
import type { MessageSink, SinkResult, SinkTransaction } from "./sink.ts";
import { commitToSpool, type Handoff } from "./spool_sink.ts";

const logger = log("smtp");

/** Options for {@link PassthroughSink}. */
export interface PassthroughSinkOptions {
  spool: Spool;
  /** Relays one transaction to the backend, reading the message from `source`. */
  relay: (envelope: Envelope, source: AsyncIterable<Uint8Array>) => Promise<StreamedDelivery>;
  /** Hands a committed copy to delivery (see `SpoolSinkOptions.handoff`). */
  handoff: Handoff;
  /** Clock (ms), injectable for tests. */
  now?: () => number;
}

/** Relays each message while it arrives; see the module documentation. */
export class PassthroughSink implements MessageSink {
  readonly #o: PassthroughSinkOptions;

  /** @param options the spool for copies, the relay function and the hand-off */
  constructor(options: PassthroughSinkOptions) {
    this.#o = options;
  }

  /** Starts relaying one message (and spooling its copy). */
  begin(envelope: Envelope): SinkTransaction {
    const { spool, relay, handoff } = this.#o;
    const now = this.#o.now ?? Date.now;
    const writer = spool.begin(envelope);
    const pipe = new ChunkPipe();
    const relayed = relay(envelope, pipe);
    relayed.catch(() => {}); // settled below; never an unhandled rejection
    return {
      write(bytes) {
        writer.write(bytes);
        pipe.push(bytes);
      },
      drain() {
        const a = pipe.drain();
        const b = writer.drain();
        return a && b ? Promise.all([a, b]).then(() => {}) : a ?? b;
      },
      async abort(reason) {
        // The backend must never see the final dot of a refused message.
        pipe.end(new Error(reason));
        await relayed.catch(() => {});
        await writer.abort().catch(() => {});
      },
      async commit(): Promise<SinkResult> {
        pipe.end();
        const outcome = await relayed.catch((error) => {
          logger.warning("{id}: pass-through failed, queueing: {error}", {
            id: envelope.id,
            error: String(error),
          });
          return null;
        });
        if (outcome === null || outcome.recipients.length === 0) {
          return await commitToSpool(writer, handoff);
        }
        const outcomes = outcome.recipients;
        const delivered = outcomes.filter((o) => o.status === "delivered");
        const refused = outcomes.filter((o) => o.status === "failed");
        const deferred = outcomes.filter((o) => o.status === "deferred");
        const answer = Replies.relayed(
          outcome.reply.code,
          outcome.reply.enhanced,
          outcome.reply.text,
        );
        if (delivered.length === outcomes.length) {
          await writer.abort().catch(() => {});
          return { reply: answer, accepted: true, outcomes };
        }
        if (delivered.length === 0 && deferred.length === 0) {
          // Nobody has it: the backend's refusal is the client's to handle.
          await writer.abort().catch(() => {});
          return { reply: answer, accepted: false, outcomes };
        }
        const at = new Date(now()).toISOString();
        const state: DeliveryState = {
          attempts: 1,
          nextAttempt: at,
          firstAttempt: at,
          lastAttempt: at,
          done: Object.fromEntries(delivered.map((o) => [o.recipient, o])),
          ...(refused.length > 0
            ? { refused: Object.fromEntries(refused.map((o) => [o.recipient, o])) }
            : {}),
          ...(deferred.length > 0
            ? {
              deferred: Object.fromEntries(deferred.map((o) => [o.recipient, o])),
              lastError: deferred[0].reply,
            }
            : {}),
        };
        const result = await commitToSpool(writer, handoff, state);
        if (!result.accepted && delivered.length > 0) {
          // The client will resend: the delivered recipients get it twice
          // (at-least-once) rather than the others never.
          logger.error(
            "{id}: relayed to {count} recipient(s) but the rest could not be queued; " +
              "the client's retry will reach them again",
            { id: envelope.id, count: delivered.length },
          );
        }
        return { ...result, outcomes };
      },
    };
  }
}
