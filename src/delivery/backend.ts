/**
 * The delivery port: where the queue hands a message for some of its
 * recipients, and what became of each recipient.
 *
 * @module
 */
import type { Envelope } from "../queue/spool.ts";

/** What happened to one recipient. */
export interface RecipientOutcome {
  recipient: string;
  /** `delivered`: done. `deferred`: try again later (4xx, network). `failed`: give up (5xx). */
  status: "delivered" | "deferred" | "failed";
  /** The backend's reply or our reason, for logs, `queue show` and bounces. */
  reply: string;
}

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
