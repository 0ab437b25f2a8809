/**
 * The relay's submission policy: the rules an authenticated client is held
 * to, behind the {@link SessionPolicy} interface.
 *
 * - The envelope sender must be in the authenticated user's domain, and
 *   that domain must not be disabled (`550 5.7.1`).
 * - Sending quotas are reserved as the transaction asks (one message at
 *   MAIL, one recipient per RCPT) and given back when it ends without a
 *   message, so parallel sessions cannot overshoot them.
 * - With `[audit] required`, no new mail is taken (`451 4.3.0`) while the
 *   audit trail cannot be written, checked at MAIL and again after the
 *   final dot, before anything is committed or relayed.
 *
 * @module
 */
import type { AuditLog } from "../audit/mod.ts";
import { HEADER_BLOCK_LIMIT, parseEmail, parseFromMailbox } from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import type { QuotaDecision, QuotaReservation, SendQuota } from "../policy/mod.ts";
import type { AuthenticatedIdentity } from "./auth_exchange.ts";
import type {
  MailVerdict,
  PolicyClient,
  PolicyTransaction,
  ReceivedMessage,
  SessionPolicy,
  Verdict,
} from "./policy.ts";
import { Replies, type SmtpReply } from "./replies.ts";

const logger = log("smtp");

/** Options for {@link SubmissionPolicy}. */
export interface SubmissionPolicyOptions {
  /** Lower-cased ASCII domains whose users may not send. */
  disabledDomains: ReadonlySet<string>;
  /** The audit trail whose health gates new mail when it is `required`. */
  audit: AuditLog;
  /** Sending quotas per user and domain; absent: none. */
  quota?: SendQuota;
  /**
   * How the `From:` header is bound to the user (`[policy] header_from`):
   * `domain` (default) in the user's domain, `address` the user's own
   * address, `any` not checked.
   */
  headerFrom?: HeaderFromPolicy;
}

/** `[policy] header_from`. */
export type HeaderFromPolicy = "domain" | "address" | "any";

/** See the module documentation. */
export class SubmissionPolicy implements SessionPolicy {
  readonly #o: SubmissionPolicyOptions;

  /** @param options domain rules, audit trail and quotas */
  constructor(options: SubmissionPolicyOptions) {
    this.#o = options;
  }

  /** Checks the sender against the identity and reserves the message in the quotas. */
  async mail(
    client: PolicyClient,
    identity: AuthenticatedIdentity,
    sender: string,
  ): Promise<MailVerdict> {
    const gate = auditGate(this.#o.audit);
    if (gate) return { reply: gate };
    const address = parseEmail(sender);
    if (!address) return { reply: Replies.badSenderSyntax() };
    if (this.#o.disabledDomains.has(address.domain)) {
      client.audit("domain_mismatch", {
        email: identity.email,
        from: sender,
        reason: "sender_domain_disabled",
      });
      return { reply: Replies.senderDomainDisabled(address.domain) };
    }
    if (address.domain !== identity.domain) {
      client.audit("domain_mismatch", {
        email: identity.email,
        domain: identity.domain,
        from: sender,
        from_domain: address.domain,
      });
      return { reply: Replies.domainMismatch(identity.domain, address.domain) };
    }
    const reservation = this.#o.quota?.open(identity) ?? null;
    if (reservation) {
      const decision = await reservation.reserveMessage().catch(storeDown);
      if (decision === null) return { reply: Replies.quotaUnavailable() };
      const refused = quotaRefusal(client, identity, decision, false);
      if (refused) return { reply: refused };
    }
    return { transaction: new SubmissionTransaction(this.#o, client, identity, reservation) };
  }
}

/** `451 4.3.0` while a required audit trail cannot be written. */
function auditGate(audit: AuditLog): Verdict {
  return audit.required && !audit.healthy ? Replies.auditUnavailable() : null;
}

class SubmissionTransaction implements PolicyTransaction {
  readonly #o: SubmissionPolicyOptions;
  readonly #client: PolicyClient;
  readonly #identity: AuthenticatedIdentity;
  readonly #quota: QuotaReservation | null;
  #ended = false;

  constructor(
    options: SubmissionPolicyOptions,
    client: PolicyClient,
    identity: AuthenticatedIdentity,
    quota: QuotaReservation | null,
  ) {
    this.#o = options;
    this.#client = client;
    this.#identity = identity;
    this.#quota = quota;
  }

  async rcpt(): Promise<Verdict> {
    if (!this.#quota) return null;
    const decision = await this.#quota.reserveRecipient().catch(storeDown);
    if (decision === null) return Replies.quotaUnavailable();
    return quotaRefusal(this.#client, this.#identity, decision, true);
  }

  data(): Promise<Verdict> {
    return Promise.resolve(auditGate(this.#o.audit));
  }

  message(message: ReceivedMessage): Promise<Verdict> {
    // Checked before the commit: a 451 after queueing or relaying would make
    // the client resend a message that is also delivered.
    return Promise.resolve(
      auditGate(this.#o.audit) ??
        headerFromRefusal(
          this.#o.headerFrom ?? "domain",
          this.#client,
          this.#identity,
          message,
        ),
    );
  }

  async end(accepted: boolean): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.#quota) return;
    if (accepted) {
      this.#quota.keep();
      return;
    }
    await this.#quota.release().catch((error) =>
      logger.error("quota release failed for {email}: {error}", {
        email: this.#identity.email,
        error: String(error),
      })
    );
  }
}

/**
 * The shared store did not answer (Redis down with `fail = "closed"`): the
 * command gets a temporary refusal, the session goes on.
 */
function storeDown(error: unknown): null {
  logger.error("sending quota unavailable: {error}", { error: String(error) });
  return null;
}

/** The reply and audit event for a quota that refuses; `null` when it allows. */
/**
 * The `From:` binding: at most one From: field, naming one address, in the
 * user's domain (`domain`) or the user's own address (`address`).
 */
function headerFromRefusal(
  policy: HeaderFromPolicy,
  client: PolicyClient,
  identity: AuthenticatedIdentity,
  message: ReceivedMessage,
): Verdict {
  if (policy === "any") return null;
  const invalid = (reason: string, reply: SmtpReply): Verdict => {
    client.audit("header_from_invalid", { email: identity.email, reason });
    return reply;
  };
  if (message.from === null) {
    return invalid("header_too_large", Replies.headerTooLarge(HEADER_BLOCK_LIMIT));
  }
  // No From: at all names no author to forge: relayed as is (and unsigned).
  if (message.from.length === 0) return null;
  if (message.from.length > 1) return invalid("duplicate", Replies.headerFromDuplicate());
  const parsed = parseFromMailbox(message.from[0]);
  if (!parsed.ok) {
    return parsed.reason === "multiple"
      ? invalid("multiple", Replies.headerFromMultiple())
      : invalid("malformed", Replies.headerFromMalformed());
  }
  const address = parsed.address;
  const allowed = policy === "address"
    ? address.canonical === parseEmail(identity.email)?.canonical
    : address.domain === identity.domain;
  if (allowed) return null;
  client.audit("header_from_mismatch", {
    email: identity.email,
    header_from: address.canonical,
    header_from_domain: address.domain,
    policy,
  });
  return Replies.headerFromMismatch(
    address.canonical,
    policy === "address" ? identity.email : `an address in ${identity.domain}`,
  );
}

function quotaRefusal(
  client: PolicyClient,
  identity: AuthenticatedIdentity,
  decision: QuotaDecision,
  atRcpt: boolean,
): Verdict {
  if (decision.ok) return null;
  const who = decision.exceeded === "user" ? identity.email : identity.domain;
  client.audit("quota_exceeded", {
    email: identity.email,
    scope: decision.exceeded,
    measure: decision.measure,
    limit: decision.limit,
    window: decision.window,
  });
  if (decision.permanent) {
    return Replies.quotaExceededPermanently(
      who,
      decision.limit,
      decision.measure,
      decision.window,
    );
  }
  if (atRcpt && decision.measure === "recipients") {
    return Replies.recipientQuotaExceeded(who, decision.limit, decision.window);
  }
  return Replies.quotaExceeded(
    who,
    decision.limit,
    decision.measure,
    decision.window,
    decision.retryAfterSeconds,
  );
}
