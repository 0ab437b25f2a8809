/**
 * The delivery port: where the queue hands a message for some of its
 * recipients, and what became of each recipient.
 *
 * @module
 */
import type { Envelope, RecipientOutcome, StreamedDelivery } from "../mail/mod.ts";

/** A backend that messages are relayed to. */
export interface DeliveryBackend {
  /** Short name for logs (`file`, `smtp://host:587`). */
  readonly name: string;
  /**
   * Delivers `data` for `recipients` (a subset of the envelope's: those not
   * yet done). Resolves with one outcome per recipient; rejects only for
   * failures that say nothing about recipients (then all are deferred).
   */
  deliver(envelope: Envelope, data: Uint8Array, recipients: string[]): Promise<RecipientOutcome[]>;
  /** Closes pooled connections. */
  close(): Promise<void>;
}

/** A backend that can relay a message while it is still arriving (pass-through mode). */
export interface StreamingBackend extends DeliveryBackend {
  /**
   * Relays one transaction, reading the message from `source` as it comes.
   * Always reads `source` to its end, even when the backend refused early.
   */
  stream(envelope: Envelope, source: AsyncIterable<Uint8Array>): Promise<StreamedDelivery>;
}

/** Whether a backend supports {@linkcode StreamingBackend.stream}. */
export function isStreamingBackend(backend: DeliveryBackend): backend is StreamingBackend {
  return typeof (backend as Partial<StreamingBackend>).stream === "function";
}
