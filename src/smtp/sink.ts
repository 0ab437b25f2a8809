/**
 * The message sink: where the bytes of DATA go, and the one explicit commit
 * that makes a message the relay's responsibility. Two strategies:
 * `SpoolSink` (queue durably, deliver later) and
 * `PassthroughSink` (relay to the backend while the client sends, keep
 * a spooled copy only for what the backend did not finish).
 *
 * The session calls `begin` after `354`, `write` for every chunk, and then
 * exactly one of `abort` (nothing of the message may reach the queue or the
 * backend) or `commit` (its reply is the client's answer).
 *
 * @module
 */
import type { Envelope, RecipientOutcome } from "../mail/mod.ts";
import type { SmtpReply } from "./replies.ts";

/** What a commit came to. */
export interface SinkResult {
  /** The reply for the client (`250`, the backend's own, `451`, `452`...). */
  reply: SmtpReply;
  /**
   * The relay took the message: queued, or relayed to at least one
   * recipient. Quotas keep what was reserved only then.
   */
  accepted: boolean;
  /** The queue id, when a copy was queued. */
  queued?: string;
  /** Pass-through: what the backend said for each recipient. */
  outcomes?: RecipientOutcome[];
}

/** One message on its way into a sink. */
export interface SinkTransaction {
  /** Appends message bytes (dot-unstuffed, CRLF line ends). */
  write(bytes: Uint8Array): void;
  /** Back-pressure: resolves when the sink has caught up; `undefined` when it has. */
  drain(): Promise<void> | undefined;
  /** Makes the message final and answers for it. Never rejects. */
  commit(): Promise<SinkResult>;
  /** Drops the message: nothing of it reaches the queue or the backend. Never rejects. */
  abort(reason: string): Promise<void>;
}

/** Where accepted messages go. */
export interface MessageSink {
  /** Starts one message with this envelope. */
  begin(envelope: Envelope): SinkTransaction;
}
