/**
 * One SMTP session (Postfix's smtpd), the protocol layer: reads command
 * lines, parses them into typed commands, and dispatches each through the
 * {@link COMMAND_TABLE}, which holds the sequencing rules. What a client may
 * do is the {@link SessionPolicy}'s to say; where a message goes is the
 * {@link MessageSink}'s. The session keeps the state machine, pipelining,
 * the limits on lines, errors and junk, and the replies.
 *
 * Replies to pipelined commands are batched and written once no complete
 * command is left in the input buffer (RFC 2920), or at once after a
 * command that must end a group, so a pipelining client costs one write
 * per round trip.
 *
 * @module
 */
import type { AuditLog } from "../audit/mod.ts";
import { type Envelope, HeaderBlockReader, newQueueId } from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import {
  type AuthContext,
  type AuthenticatedIdentity,
  decodeBase64,
  mechanismNames,
  runAuthExchange,
} from "./auth_exchange.ts";
import { type ByteStream, StreamTimeoutError } from "./byte_stream.ts";
import {
  COMMAND_TABLE,
  type CommandHandlers,
  type CommandOf,
  refusal,
  specFor,
  VerbCounters,
} from "./command_table.ts";
import { type Command, type MailParams, parseCommand } from "./commands.ts";
import {
  commandDeadline,
  dataDeadline,
  type DeadlineKind,
  type ReadDeadline,
} from "./deadlines.ts";
import { LineReader } from "./line_reader.ts";
import type { PolicyClient, PolicyTransaction, SessionPolicy } from "./policy.ts";
import { receivedHeader } from "./received.ts";
import { encodeReply, formatReply, Replies, type SmtpReply } from "./replies.ts";
import type { MessageSink, SinkResult } from "./sink.ts";

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
  /** A command line must be complete within this many ms (a deadline, not an idle timer). */
  commandTimeoutMs: number;
  /** The whole DATA section must arrive within this many ms. */
  dataTimeoutMs: number;
  /** Least average DATA rate (bytes/s) after {@link dataRateGraceMs}; 0/absent: none. */
  dataMinBytesPerSecond?: number;
  /** How long DATA may take before the minimum rate applies (ms); default 30 s. */
  dataRateGraceMs?: number;
  /** Longest session (ms); 0/absent: unlimited. */
  sessionMaxMs?: number;
  /** Monotonic clock in ms for the deadlines; default `performance.now`. */
  clock?: () => number;
  /** The address `RCPT TO:<Postmaster>` goes to (RFC 5321 4.5.1). */
  postmaster: string;
  /** Protocol-level security events (junk, errors, TLS failures, refusals). */
  audit: AuditLog;
  /** Error and junk-command limits; default {@link DEFAULT_ABUSE_LIMITS}. */
  abuse?: AbuseLimits;
  /** What the client may do, stage by stage. */
  policy: SessionPolicy;
  /** Where accepted messages go (spool or pass-through). */
  sink: MessageSink;
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
  policy: PolicyTransaction;
}

type State = "connected" | "greeted";

let sessionCounter = 0;

/** Runs one client connection from greeting to close. */
export class Session implements CommandHandlers {
  readonly id: string;
  #stream: ByteStream;
  #reader: LineReader;
  #ctx: SessionContext;
  #client: PolicyClient;
  #out: string[] = [];
  #lastCode = 0;
  #state: State = "connected";
  #helo = "";
  #esmtp = false;
  #identity: AuthenticatedIdentity | null = null;
  #tx: Transaction | null = null;
  #inData = false;
  #closing = false;
  #shutdownRequested = false;
  #errors = 0;
  #junk = 0;
  #messages = 0;
  #verbs = new VerbCounters();
  /** The verb being handled, for the refusal log lines. */
  #verb = "CONNECT";
  /** When the connection was accepted (deadline clock). */
  #started = 0;
  /** Which limit the current read deadline comes from. */
  #deadlineKind: DeadlineKind = "command";

  /** @param stream the connection, TLS already up on the SMTPS port */
  constructor(stream: ByteStream, ctx: SessionContext) {
    this.id = `${Date.now().toString(36)}${(++sessionCounter).toString(36)}`;
    this.#stream = stream;
    this.#reader = new LineReader(stream);
    this.#ctx = ctx;
    this.#client = {
      session: this.id,
      ip: stream.remoteAddress,
      port: ctx.kind,
      audit: (event, fields) => this.#audit(event, fields),
    };
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

  #clock(): number {
    return this.#ctx.clock?.() ?? performance.now();
  }

  #limits() {
    const ctx = this.#ctx;
    return {
      commandMs: ctx.commandTimeoutMs,
      dataMs: ctx.dataTimeoutMs,
      minBytesPerSecond: ctx.dataMinBytesPerSecond ?? 0,
      dataGraceMs: ctx.dataRateGraceMs ?? 30_000,
      sessionMs: ctx.sessionMaxMs ?? 0,
    };
  }

  #setDeadline(deadline: ReadDeadline): void {
    this.#deadlineKind = deadline.kind;
    this.#stream.setReadDeadline(Math.max(0, deadline.ms));
  }

  /** Arms the deadline for the command line (or SASL response) about to be read. */
  #awaitLine(): void {
    this.#setDeadline(commandDeadline(this.#limits(), this.#started, this.#clock()));
  }

  /** 421 4.4.2 for a passed deadline, audited with the limit that passed. */
  #deadlinePassed(): void {
    const kind = this.#deadlineKind;
    logger.info("session {session}: {kind} deadline passed for [{ip}], closing", {
      session: this.id,
      kind,
      ip: this.#stream.remoteAddress,
    });
    this.#audit("security_deadline", { deadline: kind, command: this.#verb });
    this.reply(Replies.timeout(this.#ctx.hostname, kind));
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
    const text = formatReply(reply);
    this.#out.push(text);
    this.#lastCode = reply.code;
    if (reply.close) this.#closing = true;
    if (reply.code >= 400) this.#refused(reply, text);
  }

  /**
   * Every refusal is one operator log line at `info` (Postfix's `reject:`);
   * 5xx and 421 count as errors; 553/554 (bad addresses, refused content)
   * also go to the audit trail.
   */
  #refused(reply: SmtpReply, wire: string): void {
    if (reply.code >= 500 || reply.code === 421) this.#errors++;
    const text = wire.trimEnd();
    logger.info("reject: {verb} from [{ip}]: {reply}; user={user} session={session}", {
      verb: this.#verb,
      ip: this.#stream.remoteAddress,
      reply: text,
      user: this.#identity?.email ?? "",
      session: this.id,
    });
    if (reply.code === 553 || reply.code === 554) {
      this.#audit("smtp_refused", {
        command: this.#verb,
        email: this.#identity?.email,
        code: reply.code,
        status: reply.enhanced,
        reply: reply.lines[0],
      });
    }
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
    this.#started = this.#clock();
    try {
      const refused = await this.#ctx.policy.connect?.(this.#client);
      this.reply(refused ?? Replies.greeting(this.#ctx.hostname));
      while (!this.#closing) {
        if (this.#shutdownRequested && this.idle) {
          this.reply(Replies.shuttingDown(this.#ctx.hostname));
          break;
        }
        if (!this.#reader.hasBufferedLine()) {
          await this.#flush();
          this.#awaitLine();
        }
        const errorsBefore = this.#errors;
        // AUTH may carry an initial response up to MAX_AUTH_LINE; other commands are shorter.
        const result = await this.#reader.readLine(MAX_AUTH_LINE);
        if (result.kind === "eof") break;
        if (
          result.kind === "too_long" ||
          (result.line.length > MAX_COMMAND_LINE && !isAuthLine(result.line))
        ) {
          this.#verb = "LINE";
          this.reply(Replies.lineTooLong());
        } else {
          await this.#dispatch(parseCommand(result.line));
        }
        await this.#enforceAbuseLimits(errorsBefore);
      }
    } catch (error) {
      if (error instanceof StreamTimeoutError) {
        this.#deadlinePassed();
      } else if (error instanceof ShutdownError) {
        this.reply(Replies.shuttingDown(this.#ctx.hostname));
      } else {
        logger.error("session {session} failed: {error}", {
          session: this.id,
          error: String(error),
        });
        this.reply(Replies.localError(this.#ctx.hostname));
      }
    } finally {
      await this.#endTransaction(false);
      await this.#flush().catch(() => {});
      stream.close();
      logger.info("disconnect from [{ip}] {counts}", {
        ip: stream.remoteAddress,
        counts: this.#verbs.toString(),
        session: this.id,
        port: this.#ctx.kind,
        user: this.#identity?.email ?? "",
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

  /** Checks the table's rules for the command, then runs its handler. */
  async #dispatch<V extends Command["verb"]>(command: CommandOf<V>): Promise<void> {
    const spec = specFor(COMMAND_TABLE, command);
    this.#verb = command.verb;
    if (spec.junk && this.#tx === null) this.#junk++;
    const refused = refusal(spec, {
      greeted: this.#state === "greeted",
      tls: this.#stream.tls !== null,
      authenticated: this.#identity !== null,
      inTransaction: this.#tx !== null,
    });
    this.#lastCode = 0;
    if (refused) this.reply(refused);
    else await spec.run(this, command);
    this.#verbs.record(spec.counter, this.#lastCode > 0 && this.#lastCode < 400);
    if (spec.lastInGroup) await this.#flush();
  }

  /** Ends the open transaction, if any, telling the policy whether it was accepted. */
  async #endTransaction(accepted: boolean): Promise<void> {
    const tx = this.#tx;
    this.#tx = null;
    await tx?.policy.end(accepted);
  }

  // --- handlers (run by the command table) -------------------------------

  /** @internal */
  async greet(command: CommandOf<"EHLO" | "HELO">): Promise<void> {
    this.#state = "greeted";
    this.#helo = command.domain.slice(0, 255);
    this.#esmtp = command.verb === "EHLO";
    // RFC 5321 4.1.4: EHLO in a transaction resets it.
    await this.#endTransaction(false);
    if (!this.#esmtp) {
      this.reply(Replies.helo(this.#ctx.hostname));
      return;
    }
    // "Hello client.example [192.0.2.1]", but an address literal is not repeated.
    const ip = `[${this.#stream.remoteAddress}]`;
    const literal = this.#helo.replace(/^\[(ipv6:)?/i, "[");
    const client = literal === ip ? this.#helo : `${this.#helo} ${ip}`;
    this.reply(Replies.ehlo(this.#ctx.hostname, client, this.#extensions()));
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
    // RFC 3207 section 4.2: forget everything learned before TLS, and
    // everything the client pipelined after STARTTLS (command injection).
    this.#reader.discard();
    this.#state = "connected";
    this.#helo = "";
    this.#identity = null;
    try {
      await this.#stream.upgrade();
    } catch (error) {
      const reason = String(error instanceof Error ? error.message : error);
      logger.info("session {session}: STARTTLS handshake with [{ip}] failed: {reason}", {
        session: this.id,
        ip: this.#stream.remoteAddress,
        reason,
      });
      this.#audit("security_tls_failed", { reason, listener: this.#ctx.kind });
      this.#lastCode = 454; // counted as a failed STARTTLS in the disconnect line
      this.#closing = true;
    }
  }

  /** @internal */
  async auth(command: CommandOf<"AUTH">): Promise<void> {
    if (this.#identity !== null) {
      this.reply(Replies.alreadyAuthenticated());
      return;
    }
    const policy = this.#ctx.policy;
    const identity = await runAuthExchange(
      {
        ip: this.#stream.remoteAddress,
        reply: (reply) => this.reply(reply),
        readResponse: () => this.#readSaslResponse(),
        audit: (event, fields) => this.#audit(event, fields),
        approve: async (who) => (await policy.auth?.(this.#client, who)) ?? null,
      },
      this.#ctx,
      command,
    );
    if (identity) this.#identity = identity;
  }

  async #readSaslResponse(): Promise<Uint8Array | "cancel" | "bad" | "eof" | "too_long"> {
    await this.#flush();
    this.#awaitLine();
    const result = await this.#reader.readLine(MAX_AUTH_LINE);
    if (result.kind === "eof") return "eof";
    if (result.kind === "too_long") return "too_long";
    const text = decoder.decode(result.line);
    if (text === "*") return "cancel";
    return decodeBase64(text) ?? "bad";
  }

  /** @internal */
  async mail(command: CommandOf<"MAIL">): Promise<void> {
    const identity = this.#identity!;
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
    const verdict = await this.#ctx.policy.mail(this.#client, identity, address, params);
    if ("reply" in verdict) {
      this.reply(verdict.reply);
      return;
    }
    this.#tx = { from: address, params, recipients: [], policy: verdict.transaction };
    this.reply(Replies.senderOk());
  }

  /** @internal */
  async rcpt(command: CommandOf<"RCPT">): Promise<void> {
    const tx = this.#tx!;
    if (tx.recipients.length >= this.#ctx.maxRecipients) {
      this.reply(Replies.tooManyRecipients());
      return;
    }
    if (!tx.params.smtputf8 && /[^\p{ASCII}]/u.test(command.address)) {
      this.reply(Replies.nonAsciiWithoutSmtpUtf8());
      return;
    }
    const address = command.postmaster ? this.#ctx.postmaster : command.address;
    const refused = await tx.policy.rcpt(address);
    if (refused) {
      this.reply(refused);
      return;
    }
    tx.recipients.push(address);
    this.reply(Replies.recipientOk());
  }

  /** @internal */
  async data(): Promise<void> {
    const tx = this.#tx!;
    if (tx.recipients.length === 0) {
      this.reply(Replies.needRcpt());
      return;
    }
    const refused = await tx.policy.data();
    if (refused) {
      this.reply(refused);
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
    const sink = this.#ctx.sink.begin(envelope);
    const header = encoder.encode(receivedHeader({
      hostname: this.#ctx.hostname,
      helo: this.#helo,
      address: this.#stream.remoteAddress,
      esmtp: this.#esmtp,
      tls,
      user: identity.email,
      id,
      recipients: tx.recipients,
      smtputf8: tx.params.smtputf8,
      date: this.#now(),
    }));
    sink.write(header);
    const headers = new HeaderBlockReader(); // the From: fields, for the policy
    headers.push(header);
    const max = this.#ctx.maxMessageBytes;
    let size = header.length;
    let tooBig = false;
    // A total deadline and a minimum average rate, re-armed as bytes arrive.
    const limits = this.#limits();
    const dataStart = this.#clock();
    const armData = () =>
      this.#setDeadline(
        dataDeadline(limits, this.#started, dataStart, size - header.length, this.#clock()),
      );
    armData();
    let result;
    try {
      result = await this.#reader.readData(
        (bytes) => {
          size += bytes.length;
          if (size - header.length > max) tooBig = true;
          else {
            sink.write(bytes);
            headers.push(bytes);
          }
        },
        () => {
          // Once per chunk read: more bytes move the minimum-rate deadline on.
          if (limits.minBytesPerSecond > 0) armData();
          return sink.drain();
        },
      );
    } catch (error) {
      // Timeout, shutdown, a broken connection: nothing of it stays behind.
      await sink.abort(String(error));
      this.#inData = false;
      throw error;
    } finally {
      this.#stream.setReadDeadline(null);
    }
    this.#inData = false;
    // Everything that can refuse the message is asked before the sink commits:
    // an aborted sink leaves nothing queued and the backend never sees the dot.
    const refusal = !result.complete
      ? null
      : tooBig
      ? Replies.messageTooBig()
      : result.bareLf
      ? Replies.bareLineFeed()
      : await tx.policy.message({
        size,
        from: headers.overflow ? null : headers.fields("From"),
      });
    if (!result.complete || refusal) {
      await sink.abort(refusal ? refusal.lines[0] : "client went away");
      await this.#endTransaction(false);
      if (refusal) {
        this.#refusedMessage(envelope, tooBig ? "too_big" : result.bareLf ? "bare_lf" : "policy");
        this.reply(refusal);
      } else this.#closing = true;
      return;
    }
    const committed = await sink.commit();
    await this.#endTransaction(committed.accepted);
    if (committed.accepted) {
      this.#messages++;
      this.#junk = 0;
    } else if (!committed.outcomes) {
      this.#refusedMessage(envelope, committed.reply.code === 452 ? "disk_full" : "spool_failure");
    }
    this.#recordOutcome(envelope, identity, size, committed);
    this.reply(committed.reply);
  }

  /** Audits a message refused after its data arrived (the metrics count these by reason). */
  #refusedMessage(envelope: Envelope, reason: string): void {
    this.#audit("message_refused", {
      queue_id: envelope.id,
      email: this.#identity?.email,
      reason,
    });
  }

  /** Logs and audits what became of a message the sink answered for. */
  #recordOutcome(
    envelope: Envelope,
    identity: AuthenticatedIdentity,
    size: number,
    committed: SinkResult,
  ): void {
    const id = envelope.id;
    for (const r of committed.outcomes ?? []) {
      if (r.status === "deferred") continue;
      this.#audit(r.status === "delivered" ? "message_relayed" : "message_bounced", {
        queue_id: id,
        email: identity.email,
        recipient: r.recipient,
        reply: r.reply,
        mode: "passthrough",
      });
    }
    if (committed.outcomes && !committed.queued) {
      const delivered = committed.outcomes.filter((o) => o.status === "delivered").length;
      logger.info("{id}: relayed in pass-through: {delivered}/{count} delivered ({reply})", {
        id,
        delivered,
        count: committed.outcomes.length,
        reply: formatReply(committed.reply).trimEnd(),
        session: this.id,
      });
      return;
    }
    if (!committed.queued) return;
    logger.info("{id}: accepted from={from} rcpts={count} size={size} user={user}", {
      id,
      from: envelope.from,
      count: envelope.recipients.length,
      size,
      user: identity.email,
      session: this.id,
    });
    this.#audit("message_accepted", {
      queue_id: id,
      email: identity.email,
      from: envelope.from,
      recipients: envelope.recipients.length,
      size,
    });
  }

  /** @internal */
  async reset(): Promise<void> {
    await this.#endTransaction(false);
    this.reply(Replies.reset());
  }

  /** @internal */
  quit(): void {
    this.reply(Replies.bye());
  }

  /** @internal */
  forbidden(command: CommandOf<"FORBIDDEN">): void {
    logger.warning("session {session}: non-SMTP command {name} from {ip}, closing", {
      session: this.id,
      name: command.name,
      ip: this.#stream.remoteAddress,
    });
    this.#audit("security_non_smtp_command", { command: command.name });
    this.reply(Replies.nonSmtpCommand());
  }

  /** @internal */
  invalid(command: CommandOf<"INVALID">): void {
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
