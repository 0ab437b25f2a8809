/**
 * The delivery port: where the queue hands a message for some of its
 * recipients, and what became of each recipient.
 *
 * @module
 */
import type { Envelope } from "../queue/spool.ts";

/** What happened to one recipient. */
export interface RecipientOutcome {
  /** The recipient, as in the envelope. */
  recipient: string;
  /** `delivered`: done. `deferred`: try again later (4xx, network). `failed`: give up (5xx). */
  status: "delivered" | "deferred" | "failed";
  /** The backend's reply or our reason, for logs, `queue show` and bounces. */
  reply: string;
  /**
   * The RFC 3463 status for a DSN (`5.1.1`); when absent it is read from
   * `reply` or derived from the reply class.
   */
  enhanced?: string;
  /** The route and backend that decided (`company.com smtp://host:587`), for logs. */
  via?: string;
  /** The backend host that gave the reply, for a DSN's `Remote-MTA`. */
  remoteMta?: string;
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

/** The final word of a streamed (pass-through) transaction. */
export interface StreamedDelivery {
  /**
   * The reply to give the submitting client: the backend's reply after the
   * data when every recipient was accepted, else the first failure (MAIL,
   * DATA, the final reply, or our own reason such as a connect error).
   */
  reply: { code: number; enhanced?: string; text: string };
  /** One outcome per recipient of the envelope. */
  recipients: RecipientOutcome[];
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
