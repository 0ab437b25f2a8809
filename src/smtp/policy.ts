/**
 * The policy layer: what the session asks at each stage of a submission
 * before it goes on (compare go-smtp's `Session` and Haraka's hooks). Every
 * answer is "go on" (`null`) or the reply that refuses. The protocol layer
 * knows nothing of domains, quotas or audit trails; the policy knows nothing
 * of sockets, so it can be tested by calling it.
 *
 * A transaction's policy state (quota reservations) lives in the
 * {@link PolicyTransaction} that `mail` opens; the session ends it exactly
 * once, telling whether the message was accepted.
 *
 * @module
 */
import type { AuthenticatedIdentity } from "./auth_exchange.ts";
import type { MailParams } from "./commands.ts";
import type { SmtpReply } from "./replies.ts";

/** A policy's answer: `null` to go on, else the reply that refuses. */
export type Verdict = SmtpReply | null;

/** The connection a policy is asked about. */
export interface PolicyClient {
  /** The session id (logs, audit). */
  readonly session: string;
  /** The client's address. */
  readonly ip: string;
  /** The listener it came in on. */
  readonly port: "smtps" | "submission";
  /** Records an audit event for this session (the session adds its id, address and port). */
  audit(event: string, fields: Record<string, unknown>): void;
}

/** What is known of a message once its final dot has arrived. */
export interface ReceivedMessage {
  /** Size in bytes, our Received: header included. */
  size: number;
  /**
   * The unfolded values of the message's `From:` fields, in order; `null`
   * when the header block was larger than the 64 KiB the session reads.
   */
  from: readonly string[] | null;
}

/** The policy of one MAIL transaction; opened by {@link SessionPolicy.mail}. */
export interface PolicyTransaction {
  /** RCPT TO: may this recipient be added? */
  rcpt(address: string): Promise<Verdict>;
  /** DATA: may the message be sent now (before `354`)? */
  data(): Promise<Verdict>;
  /**
   * After the final dot, before the message is committed: may it be
   * accepted? A refusal here means nothing reaches the queue or the backend.
   */
  message(message: ReceivedMessage): Promise<Verdict>;
  /**
   * The transaction is over: `accepted` when the message was committed
   * (queued or relayed), else it ended without one (RSET, a refusal, a
   * failed commit, a client that went away). Called exactly once.
   */
  end(accepted: boolean): Promise<void>;
}

/** The answer to MAIL FROM: a refusal, or the transaction's policy. */
export type MailVerdict = { reply: SmtpReply } | { transaction: PolicyTransaction };

/** What the session asks, stage by stage. */
export interface SessionPolicy {
  /** A new connection, before the greeting; a refusal closes it. */
  connect?(client: PolicyClient): Promise<Verdict>;
  /** A client authenticated as `identity`, before `235`; a refusal ends the exchange. */
  auth?(client: PolicyClient, identity: AuthenticatedIdentity): Promise<Verdict>;
  /** MAIL FROM from an authenticated client (syntax already checked). */
  mail(
    client: PolicyClient,
    identity: AuthenticatedIdentity,
    sender: string,
    params: MailParams,
  ): Promise<MailVerdict>;
}
