/**
 * What became of a message for each recipient: the answer a backend gives
 * the queue, the record the queue keeps, and what a pass-through session
 * tells its client.
 *
 * @module
 */

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
