/**
 * One SMTP session (Postfix's smtpd): reads command lines, parses them into
 * typed commands, and dispatches each through {@link COMMAND_TABLE}, which
 * says in which states a verb is allowed and which handler runs it.
 *
 * Replies to pipelined commands are batched and written once no complete
 * command is left in the input buffer (RFC 2920), so a pipelining client
 * costs one write per round trip.
 *
 * @module
 */
import {
  type Envelope,
  newQueueId,
  parseEmail,
  type RecipientOutcome,
  type StreamedDelivery,
} from "../mail/mod.ts";
import type { AuditLog } from "../audit/mod.ts";
import type { QuotaDecision, SendQuota } from "../policy/quota.ts";
import type { Spool, SpoolWriter } from "../queue/spool.ts";
import { ChunkPipe } from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import {
  type AuthContext,
  decodeBase64,
  mechanismNames,
  runAuthExchange,
} from "./auth_exchange.ts";
import { type ByteStream, StreamTimeoutError } from "./byte_stream.ts";
import { type Command, type MailParams, parseCommand } from "./commands.ts";
import { LineReader } from "./line_reader.ts";
import { receivedHeader } from "./received.ts";
import { encodeReply, formatReply, Replies, type SmtpReply } from "./replies.ts";

const logger = log("smtp");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Longest command line, CRLF excluded (Postfix's line_length_limit). */
export const MAX_COMMAND_LINE = 2048;
/** Longest AUTH line or SASL response (RFC 4954 section 4: 12288 octets). */
export const MAX_AUTH_LINE = 12288;
/** Error and junk-command limits (Postfix's smtpd_soft/hard_error_limit, junk_command_limit). */
export interface AbuseLimits {
  /** Errors after which every error reply is delayed. */
  softErrorLimit: number;
  /** Errors after which the session is closed with 421. */
  hardErrorLimit: number;
  /** Delay per error beyond the soft limit, ms (grows with each error, capped at 10 s). */
  errorDelayMs: number;
  /** NOOP/RSET/VRFY/HELP/EHLO/HELO without a delivered message before 421. */
  junkCommandLimit: number;
}

/** Defaults as in Postfix. */
export const DEFAULT_ABUSE_LIMITS: AbuseLimits = {
  softErrorLimit: 10,
  hardErrorLimit: 20,
  errorDelayMs: 1000,
  junkCommandLimit: 100,
};

/** Verbs that do no work toward a message (counted against the junk limit). */
const JUNK_VERBS: ReadonlySet<Command["verb"]> = new Set([
  "NOOP",
  "RSET",
  "VRFY",
  "HELP",
  "EHLO",
  "HELO",
]);

/** Which listener a session came in on. */
export type ListenerKind = "smtps" | "submission";

export type { MechanismSpec } from "./auth_exchange.ts";

/** What a session needs from the server around it (the AUTH parts: {@link AuthContext}). */
export interface SessionContext extends AuthContext {
  hostname: string;
  kind: ListenerKind;
  /** Whether STARTTLS can be offered (a certificate is loaded). */
  tlsAvailable: boolean;
  maxMessageBytes: number;
  maxRecipients: number;
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  /** Lower-cased ASCII domains whose users may not send (MAIL FROM). */
  disabledDomains: ReadonlySet<string>;
  spool: Spool;
  audit: AuditLog;
  /** Error and junk-command limits; default {@link DEFAULT_ABUSE_LIMITS}. */
  abuse?: AbuseLimits;
  /** Sending quotas per user and domain. */
  quota?: SendQuota;
  /**
   * Pass-through mode: relays the message to the backend while it arrives
   * and resolves with the backend's verdict (`relay.mode = "passthrough"`).
   */
  passthrough?: {
    relay: (envelope: Envelope, source: AsyncIterable<Uint8Array>) => Promise<StreamedDelivery>;
    /** Records recipients already delivered, before a partly relayed message is queued. */
    markDelivered: (id: string, outcomes: RecipientOutcome[]) => Promise<void>;
  };
  /**
   * Called once a message is durably queued; `hasState` when delivery
   * progress was already recorded for it (pass-through, partly relayed).
   */
  onQueued: (id: string, hasState?: boolean) => void;
  /** Clock, injectable for tests. */
  now?: () => Date;
}

/** Thrown into a waiting read when the server shuts down. */
export class ShutdownError extends Error {
  constructor() {
    super("server shutting down");
    this.name = "ShutdownError";
  }
}

interface Transaction {
  from: string;
  params: MailParams;
  recipients: string[];
}

interface Identity {
  email: string;
  domain: string;
  mechanism: string;
}

type State = "connected" | "greeted";

/** A handler and the states it may run in (Postfix's smtpd_cmd_table). */
interface CommandSpec {
  /** Needs EHLO/HELO first. */
  needsHelo: boolean;
  /** Allowed while a MAIL transaction is open (else 503 5.5.1, as for AUTH and STARTTLS). */
  inTransaction: boolean;
  run: (session: Session, command: never) => Promise<void> | void;
}

let sessionCounter = 0;

/** Runs one client connection from greeting to close. */
export class Session {
  readonly id: string;
  #stream: ByteStream;
  #reader: LineReader;
  #ctx: SessionContext;
  #out: string[] = [];
  #state: State = "connected";
  #helo = "";
  #esmtp = false;
  #identity: Identity | null = null;
  #tx: Transaction | null = null;
  #inData = false;
  #closing = false;
  #shutdownRequested = false;
  #errors = 0;
  #junk = 0;
  #messages = 0;

  /** @param stream the connection, TLS already up on the SMTPS port */
  constructor(stream: ByteStream, ctx: SessionContext) {
    this.id = `${Date.now().toString(36)}${(++sessionCounter).toString(36)}`;
    this.#stream = stream;
    this.#reader = new LineReader(stream);
    this.#ctx = ctx;
  }

  /** Whether the session is between transactions (safe to close at shutdown). */
  get idle(): boolean {
    return this.#tx === null && !this.#inData;
  }

  /**
   * Asks the session to end: an idle session gets 421 at once, a busy one
   * after its current transaction.
   */
  requestShutdown(): void {
    this.#shutdownRequested = true;
    if (this.idle) this.#stream.interrupt(new ShutdownError());
  }

  /** Ends the session now with 421 (shutdown deadline passed). */
  async forceClose(): Promise<void> {
    if (this.#stream.closed) return;
    await this.#stream.write(encodeReply(Replies.shuttingDown(this.#ctx.hostname)));
    this.#stream.close();
  }

  #now(): Date {
    return this.#ctx.now?.() ?? new Date();
  }

  #audit(event: string, fields: Record<string, unknown>): void {
    this.#ctx.audit.record({
      event,
      session: this.id,
      ip: this.#stream.remoteAddress,
      port: this.#ctx.kind,
      ...fields,
    });
  }

  /** Queues a reply; it is written when no pipelined command is waiting. */
  reply(reply: SmtpReply): void {
    this.#out.push(formatReply(reply));
    if (reply.close) this.#closing = true;
    if (reply.code >= 500 || reply.code === 421) this.#errors++;
  }

  async #flush(): Promise<void> {
    if (this.#out.length === 0) return;
    const text = this.#out.length === 1 ? this.#out[0] : this.#out.join("");
    this.#out = [];
    await this.#stream.write(encoder.encode(text));
  }

  /** Runs the session to its end. Never throws. */
  async run(): Promise<void> {
    const stream = this.#stream;
    logger.debug("session {session} connected from {ip} on {port}", {
      session: this.id,
      ip: stream.remoteAddress,
      port: this.#ctx.kind,
    });
    try {
      stream.setReadTimeout(this.#ctx.commandTimeoutMs);
      this.reply(Replies.greeting(this.#ctx.hostname));
      while (!this.#closing) {
        if (this.#shutdownRequested && this.idle) {
          this.reply(Replies.shuttingDown(this.#ctx.hostname));
          break;
        }
        if (!this.#reader.hasBufferedLine()) await this.#flush();
        const errorsBefore = this.#errors;
        // AUTH may carry an initial response up to MAX_AUTH_LINE; other commands are shorter.
        const result = await this.#reader.readLine(MAX_AUTH_LINE);
        if (result.kind === "eof") break;
        if (
          result.kind === "too_long" ||
          (result.line.length > MAX_COMMAND_LINE && !isAuthLine(result.line))
        ) {
          this.reply(Replies.lineTooLong());
        } else {
          await this.#dispatch(parseCommand(result.line));
        }
        await this.#enforceAbuseLimits(errorsBefore);
      }
    } catch (error) {
      if (error instanceof StreamTimeoutError) {
        this.reply(Replies.timeout(this.#ctx.hostname));
      } else if (error instanceof ShutdownError) {
        this.reply(Replies.shuttingDown(this.#ctx.hostname));
      } else {
        logger.error("session {session} failed: {error}", {
          session: this.id,
          error: String(error),
        });
        this.reply(Replies.localError());
      }
    } finally {
      await this.#flush().catch(() => {});
      stream.close();
      logger.debug("session {session} closed after {messages} messages", {
        session: this.id,
        messages: this.#messages,
      });
    }
  }

  /**
   * After each command: past the soft error limit every error reply waits
   * (tarpitting a guesser or a confused client); at the hard limit, and past
   * the junk-command limit, the session ends with 421.
   */
  async #enforceAbuseLimits(errorsBefore: number): Promise<void> {
    if (this.#closing) return;
    const limits = this.#ctx.abuse ?? DEFAULT_ABUSE_LIMITS;
    if (this.#errors >= limits.hardErrorLimit) {
      this.#audit("security_too_many_errors", { errors: this.#errors });
      this.reply(Replies.tooManyErrors(this.#ctx.hostname));
      return;
    }
    if (this.#junk > limits.junkCommandLimit) {
      this.#audit("security_too_many_junk_commands", { commands: this.#junk });
      this.reply(Replies.tooManyJunkCommands(this.#ctx.hostname));
      return;
    }
    const over = this.#errors - limits.softErrorLimit;
    if (this.#errors > errorsBefore && over > 0 && limits.errorDelayMs > 0) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(limits.errorDelayMs * over, 10_000))
      );
    }
  }

  async #dispatch(command: Command): Promise<void> {
    const spec = COMMAND_TABLE[command.verb];
    if (JUNK_VERBS.has(command.verb) && this.#tx === null) this.#junk++;
    if (spec.needsHelo && this.#state !== "greeted") {
      this.reply(Replies.needEhlo());
      return;
    }
    if (!spec.inTransaction && !this.idle) {
      this.reply(Replies.authInTransaction());
      return;
    }
    await spec.run(this, command as never);
  }

  // --- handlers -----------------------------------------------------------

  /** @internal */
  greet(command: { verb: "EHLO" | "HELO"; domain: string }): void {
    this.#tx = null;
    this.#state = "greeted";
    this.#helo = command.domain.slice(0, 255);
    this.#esmtp = command.verb === "EHLO";
    if (!this.#esmtp) {
      this.reply(Replies.helo(this.#ctx.hostname));
      return;
    }
    this.reply(
      Replies.ehlo(
        this.#ctx.hostname,
        `${this.#helo} [${this.#stream.remoteAddress}]`,
        this.#extensions(),
      ),
    );
  }

  #extensions(): string[] {
    const ext = [
      "PIPELINING",
      `SIZE ${this.#ctx.maxMessageBytes}`,
      "8BITMIME",
      "SMTPUTF8",
      "ENHANCEDSTATUSCODES",
    ];
    if (this.#stream.tls === null && this.#ctx.tlsAvailable) ext.push("STARTTLS");
    if (this.#stream.tls !== null && this.#identity === null) {
      ext.push(`AUTH ${mechanismNames(this.#ctx).join(" ")}`);
    }
    return ext;
  }

  /** @internal */
  async startTls(): Promise<void> {
    if (this.#stream.tls !== null) {
      this.reply(Replies.tlsAlreadyActive());
      return;
    }
    if (!this.#ctx.tlsAvailable) {
      this.reply(Replies.tlsNotAvailable());
      return;
    }
    this.reply(Replies.readyToStartTls());
    await this.#flush();
    // RFC 3207 section 4.2: forget everything learned before TLS.
    this.#reader.discard();
    this.#state = "connected";
    this.#helo = "";
    this.#identity = null;
    this.#tx = null;
    try {
      await this.#stream.upgrade();
    } catch (error) {
      logger.info("session {session}: TLS handshake failed: {error}", {
        session: this.id,
        error: String(error instanceof Error ? error.message : error),
      });
      this.#audit("security_tls_failed", { reason: String(error) });
      this.#closing = true;
    }
  }

  /** @internal */
  async auth(command: { mechanism: string; initial: string | null }): Promise<void> {
    if (this.#stream.tls === null) {
      this.reply(Replies.encryptionRequired());
      return;
    }
    if (this.#identity !== null) {
      this.reply(Replies.alreadyAuthenticated());
      return;
    }
    const identity = await runAuthExchange(
      {
        ip: this.#stream.remoteAddress,
        reply: (reply) => this.reply(reply),
        readResponse: () => this.#readSaslResponse(),
        audit: (event, fields) => this.#audit(event, fields),
      },
      this.#ctx,
      command,
    );
    if (identity) this.#identity = identity;
  }

  async #readSaslResponse(): Promise<Uint8Array | "cancel" | "bad" | "eof" | "too_long"> {
    await this.#flush();
    const result = await this.#reader.readLine(MAX_AUTH_LINE);
    if (result.kind === "eof") return "eof";
    if (result.kind === "too_long") return "too_long";
    const text = decoder.decode(result.line);
    if (text === "*") return "cancel";
    return decodeBase64(text) ?? "bad";
  }

  /** With `[audit] required`, refuses new mail (451 4.3.0) while the trail cannot be written. */
  #auditDown(): boolean {
    const audit = this.#ctx.audit;
    if (!audit.required || audit.healthy) return false;
    this.reply(Replies.auditUnavailable());
    return true;
  }

  /** Replies and audits when a quota refuses; `true` when the command must stop. */
  #quotaRefused(decision: QuotaDecision, atRcpt: boolean): boolean {
    if (decision.ok) return false;
    const identity = this.#identity!;
    const who = decision.exceeded === "user" ? identity.email : identity.domain;
    this.#audit("quota_exceeded", {
      email: identity.email,
      scope: decision.exceeded,
      measure: decision.measure,
      limit: decision.limit,
      window: decision.window,
    });
    if (decision.permanent) {
      this.reply(
        Replies.quotaExceededPermanently(who, decision.limit, decision.measure, decision.window),
      );
    } else if (atRcpt && decision.measure === "recipients") {
      this.reply(Replies.recipientQuotaExceeded(who, decision.limit, decision.window));
    } else {
      this.reply(
        Replies.quotaExceeded(
          who,
          decision.limit,
          decision.measure,
          decision.window,
          decision.retryAfterSeconds,
        ),
      );
    }
    return true;
  }

  /** @internal */
  async mail(command: { address: string; params: MailParams }): Promise<void> {
    if (this.#ctx.kind === "submission" && this.#stream.tls === null) {
      this.reply(Replies.tlsRequired());
      return;
    }
    const identity = this.#identity;
    if (identity === null) {
      this.reply(Replies.authRequired());
      return;
    }
    if (this.#tx !== null) {
      this.reply(Replies.nestedMail());
      return;
    }
    if (this.#auditDown()) return;
    const { address, params } = command;
    if (params.size !== undefined && params.size > this.#ctx.maxMessageBytes) {
      this.reply(Replies.messageTooBigDeclared());
      return;
    }
    if (address === "") {
      this.reply(Replies.nullSenderRefused());
      return;
    }
    if (!params.smtputf8 && /[^\p{ASCII}]/u.test(address)) {
      this.reply(Replies.nonAsciiWithoutSmtpUtf8());
      return;
    }
    const sender = parseEmail(address);
    if (!sender) {
      this.reply(Replies.badSenderSyntax());
      return;
    }
    if (this.#ctx.disabledDomains.has(sender.domain)) {
      this.#audit("domain_mismatch", {
        email: identity.email,
        from: address,
        reason: "sender_domain_disabled",
      });
      this.reply(Replies.senderDomainDisabled(sender.domain));
      return;
    }
    if (sender.domain !== identity.domain) {
      this.#audit("domain_mismatch", {
        email: identity.email,
        domain: identity.domain,
        from: address,
        from_domain: sender.domain,
      });
      this.reply(Replies.domainMismatch(identity.domain, sender.domain));
      return;
    }
    const quota = this.#ctx.quota;
    if (quota) {
      const usage = { email: identity.email, domain: identity.domain, recipients: 0 };
      if (this.#quotaRefused(await quota.checkMessage(usage), false)) return;
    }
    this.#tx = { from: address, params, recipients: [] };
    this.reply(Replies.senderOk());
  }

  /** @internal */
  async rcpt(command: { address: string }): Promise<void> {
    const tx = this.#tx;
    if (tx === null) {
      this.reply(Replies.needMail());
      return;
    }
    if (tx.recipients.length >= this.#ctx.maxRecipients) {
      this.reply(Replies.tooManyRecipients());
      return;
    }
    if (!tx.params.smtputf8 && /[^\p{ASCII}]/u.test(command.address)) {
      this.reply(Replies.nonAsciiWithoutSmtpUtf8());
      return;
    }
    if (!parseEmail(command.address)) {
      this.reply(Replies.badRecipientSyntax());
      return;
    }
    const quota = this.#ctx.quota;
    if (quota) {
      const identity = this.#identity!;
      const usage = {
        email: identity.email,
        domain: identity.domain,
        recipients: tx.recipients.length + 1,
      };
      if (this.#quotaRefused(await quota.checkMessage(usage), true)) return;
    }
    tx.recipients.push(command.address);
    this.reply(Replies.recipientOk());
  }

  /** @internal */
  async data(): Promise<void> {
    const tx = this.#tx;
    if (tx === null) {
      this.reply(Replies.needMail());
      return;
    }
    if (tx.recipients.length === 0) {
      this.reply(Replies.needRcpt());
      return;
    }
    const identity = this.#identity!;
    const id = newQueueId(this.#now().getTime());
    const tls = this.#stream.tls;
    const envelope: Envelope = {
      v: 1,
      id,
      from: tx.from,
      recipients: tx.recipients,
      receivedAt: this.#now().toISOString(),
      ...(tx.params.body ? { body: tx.params.body } : {}),
      ...(tx.params.smtputf8 ? { smtputf8: true } : {}),
      client: {
        address: this.#stream.remoteAddress,
        helo: this.#helo,
        user: identity.email,
        ...(tls ? { tls: `${tls.protocol} ${tls.cipher}` } : {}),
      },
    };
    this.reply(Replies.startData());
    await this.#flush();
    this.#inData = true;
    const writer: SpoolWriter = this.#ctx.spool.begin(envelope);
    const max = this.#ctx.maxMessageBytes;
    let tooBig = false;
    const header = encoder.encode(receivedHeader({
      hostname: this.#ctx.hostname,
      helo: this.#helo,
      address: this.#stream.remoteAddress,
      esmtp: this.#esmtp,
      tls,
      user: identity.email,
      id,
      recipients: tx.recipients,
      date: this.#now(),
    }));
    writer.write(header);
    // Pass-through: the backend gets the bytes as they arrive; the spool keeps a copy
    // in case some recipients must be retried later.
    const passthrough = this.#ctx.passthrough;
    const pipe = passthrough ? new ChunkPipe() : null;
    const relayed = passthrough && pipe ? passthrough.relay(envelope, pipe) : null;
    relayed?.catch(() => {}); // awaited below; never an unhandled rejection
    pipe?.push(header);
    let received = 0;
    this.#stream.setReadTimeout(this.#ctx.dataTimeoutMs);
    let result;
    try {
      result = await this.#reader.readData(
        (bytes) => {
          received += bytes.length;
          if (received > max) tooBig = true;
          else {
            writer.write(bytes);
            pipe?.push(bytes);
          }
        },
        () => {
          const a = pipe?.drain();
          const b = writer.drain();
          return a && b ? Promise.all([a, b]).then(() => {}) : a ?? b;
        },
      );
    } catch (error) {
      pipe?.end(error);
      await writer.abort();
      this.#inData = false;
      this.#tx = null;
      throw error;
    } finally {
      this.#stream.setReadTimeout(this.#ctx.commandTimeoutMs);
    }
    this.#inData = false;
    this.#tx = null;
    const refusal = !result.complete
      ? "client went away"
      : tooBig
      ? "message too big"
      : result.bareLf
      ? "bare LF"
      : null;
    // A refused message must not reach the backend: ending the pipe with an
    // error means the backend never sees the final dot.
    pipe?.end(refusal ? new Error(refusal) : undefined);
    if (refusal && relayed) await relayed.catch(() => {});
    if (!result.complete) {
      // The client vanished mid-DATA: nothing of it stays behind.
      await writer.abort();
      this.#closing = true;
      return;
    }
    if (tooBig) {
      await writer.abort();
      this.reply(Replies.messageTooBig());
      return;
    }
    if (result.bareLf) {
      await writer.abort();
      this.reply(Replies.bareLineFeed());
      return;
    }
    // Checked before the spool commit: a 451 after spooling would make the
    // client resend a message that is also delivered.
    if (this.#auditDown()) {
      await writer.abort();
      return;
    }
    if (relayed && passthrough) {
      const outcome = await relayed.catch((error) => {
        logger.warning("{id}: pass-through failed, queueing: {error}", {
          id,
          error: String(error),
        });
        return null;
      });
      const statuses = outcome?.recipients.map((r) => r.status) ?? [];
      if (outcome && statuses.length > 0 && statuses.every((st) => st !== "deferred")) {
        // Every recipient has a final answer: the client gets the backend's verdict.
        await writer.abort();
        const delivered = statuses.filter((st) => st === "delivered").length;
        logger.info("{id}: relayed in pass-through: {delivered}/{count} delivered ({reply})", {
          id,
          delivered,
          count: statuses.length,
          reply: `${outcome.reply.code} ${outcome.reply.text}`,
        });
        for (const r of outcome.recipients) {
          this.#audit(r.status === "delivered" ? "message_relayed" : "message_bounced", {
            queue_id: id,
            email: identity.email,
            recipient: r.recipient,
            reply: r.reply,
            mode: "passthrough",
          });
        }
        if (delivered > 0) {
          this.#messages++;
          await this.#commitQuota(tx, identity);
        }
        this.reply(
          Replies.relayed(outcome.reply.code, outcome.reply.enhanced, outcome.reply.text),
        );
        return;
      }
      // Some recipients must be retried: queue the spooled copy for them only.
      if (outcome) {
        const done = outcome.recipients.filter((r) => r.status === "delivered");
        if (done.length > 0) {
          try {
            await writer.commit();
            await passthrough.markDelivered(id, done);
          } catch (error) {
            logger.error("spool write failed for {id}: {error}", { id, error: String(error) });
            this.reply(Replies.spoolFailure());
            return;
          }
          await this.#acceptedReply(id, tx, identity, received, true);
          return;
        }
      }
    }
    try {
      await writer.commit();
    } catch (error) {
      logger.error("spool write failed for {id}: {error}", { id, error: String(error) });
      this.reply(Replies.spoolFailure());
      return;
    }
    await this.#acceptedReply(id, tx, identity, received);
  }

  /** Logs, audits and answers a message that is durably queued, then hands it on. */
  async #acceptedReply(
    id: string,
    tx: Transaction,
    identity: Identity,
    received: number,
    hasState = false,
  ): Promise<void> {
    this.#messages++;
    this.#junk = 0;
    logger.info("{id}: accepted from={from} rcpts={count} size={size} user={user}", {
      id,
      from: tx.from,
      count: tx.recipients.length,
      size: received,
      user: identity.email,
      session: this.id,
    });
    this.#audit("message_accepted", {
      queue_id: id,
      email: identity.email,
      from: tx.from,
      recipients: tx.recipients.length,
      size: received,
    });
    this.reply(Replies.queued(id));
    this.#ctx.onQueued(id, hasState);
    await this.#commitQuota(tx, identity);
  }

  async #commitQuota(tx: Transaction, identity: Identity): Promise<void> {
    await this.#ctx.quota?.commit({
      email: identity.email,
      domain: identity.domain,
      recipients: tx.recipients.length,
    }).catch((error) => logger.error("quota commit failed: {error}", { error: String(error) }));
  }

  /** @internal */
  reset(): void {
    this.#tx = null;
    this.reply(Replies.reset());
  }

  /** @internal */
  quit(): void {
    this.reply(Replies.bye());
  }

  /** @internal */
  forbidden(command: { name: string }): void {
    logger.warning("session {session}: non-SMTP command {name} from {ip}, closing", {
      session: this.id,
      name: command.name,
      ip: this.#stream.remoteAddress,
    });
    this.#audit("security_non_smtp_command", { command: command.name });
    this.reply(Replies.nonSmtpCommand());
  }

  /** @internal */
  invalid(command: Extract<Command, { verb: "INVALID" }>): void {
    switch (command.reply) {
      case "parameter":
        this.reply(Replies.unknownParameter(command.name));
        break;
      case "value":
        this.reply(Replies.badParameterValue(command.name));
        break;
      case "address":
        this.reply(
          command.name === "MAIL" ? Replies.badSenderSyntax() : Replies.badRecipientSyntax(),
        );
        break;
      default:
        this.reply(Replies.syntax(command.usage));
    }
  }
}

/** Whether a command line starts with the AUTH verb (case-insensitive). */
function isAuthLine(line: Uint8Array): boolean {
  return line.length > 5 && (line[0] | 0x20) === 0x61 && (line[1] | 0x20) === 0x75 &&
    (line[2] | 0x20) === 0x74 && (line[3] | 0x20) === 0x68 && line[4] === 0x20;
}

const noTx = (run: CommandSpec["run"], needsHelo = true): CommandSpec => ({
  needsHelo,
  inTransaction: false,
  run,
});

/**
 * The dispatcher table: every verb, the state it needs, and its handler.
 * A verb missing here cannot be dispatched (the type system checks that).
 */
export const COMMAND_TABLE: { [V in Command["verb"]]: CommandSpec } = {
  EHLO: { needsHelo: false, inTransaction: true, run: (s, c) => s.greet(c) },
  HELO: { needsHelo: false, inTransaction: true, run: (s, c) => s.greet(c) },
  STARTTLS: noTx((s) => s.startTls()),
  AUTH: {
    needsHelo: true,
    inTransaction: false,
    run: (s, c) => s.auth(c),
  },
  // A nested MAIL gets its own reply from the handler.
  MAIL: { needsHelo: true, inTransaction: true, run: (s, c) => s.mail(c) },
  RCPT: { needsHelo: true, inTransaction: true, run: (s, c) => s.rcpt(c) },
  DATA: { needsHelo: true, inTransaction: true, run: (s) => s.data() },
  RSET: { needsHelo: false, inTransaction: true, run: (s) => s.reset() },
  NOOP: { needsHelo: false, inTransaction: true, run: (s) => s.reply(Replies.noop()) },
  QUIT: { needsHelo: false, inTransaction: true, run: (s) => s.quit() },
  VRFY: { needsHelo: false, inTransaction: true, run: (s) => s.reply(Replies.vrfy()) },
  HELP: { needsHelo: false, inTransaction: true, run: (s) => s.reply(Replies.help()) },
  UNIMPLEMENTED: {
    needsHelo: false,
    inTransaction: true,
    run: (s, c: { name: string }) => s.reply(Replies.notImplemented(c.name)),
  },
  FORBIDDEN: {
    needsHelo: false,
    inTransaction: true,
    run: (s, c) => s.forbidden(c),
  },
  UNKNOWN: {
    needsHelo: false,
    inTransaction: true,
    run: (s) => s.reply(Replies.unknownCommand()),
  },
  INVALID: { needsHelo: false, inTransaction: true, run: (s, c) => s.invalid(c) },
  BAD_BYTES: {
    needsHelo: false,
    inTransaction: true,
    run: (s) => s.reply(Replies.badCharacters()),
  },
};
