/**
 * The SMTP backend (Postfix's smtp client): relays queued messages to one
 * smart host over a {@linkcode SmtpPool} of connections, and turns the
 * host's replies into one outcome per recipient: 2xx delivered, 5xx failed,
 * 4xx or a broken connection deferred.
 *
 * Before sending it checks what the message needs against what the host
 * offers: a message with 8-bit bytes needs 8BITMIME (5.6.3 when missing; we
 * never downgrade), a real SMTPUTF8 message needs SMTPUTF8 (5.6.7), and a
 * message larger than the host's SIZE fails with 5.3.4.
 *
 * @module
 */
import {
  type Envelope,
  messageNeeds,
  type RecipientOutcome,
  type StreamedDelivery,
} from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import type { StreamingBackend } from "./backend.ts";
import { type PoolLease, SmtpPool } from "./pool.ts";
import {
  formatReply,
  type ServerReply,
  SmtpClient,
  SmtpReplyError,
  type SmtpSecurity,
  type SmtpSendParams,
  type SmtpSendResult,
} from "./smtp_client.ts";

const logger = log("delivery");

/** Options for {@linkcode SmtpBackend}. */
export interface SmtpBackendOptions {
  /** Route label for logs (`default`, `company.com`). */
  route: string;
  /** Backend host name or address. */
  host: string;
  /** TCP port. */
  port: number;
  /** `starttls` (required), `implicit` TLS or `none`. */
  security: SmtpSecurity;
  /** The URL as configured (no credentials), for logs and `via`. */
  display: string;
  /** AUTH credentials; AUTH PLAIN or LOGIN, whichever the host offers. */
  username?: string;
  /** AUTH password (never logged). */
  password?: string;
  /** Extra trusted CA certificates (PEM). */
  caCerts?: string[];
  /** Name the certificate must carry (default `host`). */
  servername?: string;
  /** Check the certificate's host name (default true); the chain is always checked. */
  verify?: boolean;
  /** Our name in EHLO (the relay's `server.hostname`). */
  ehloName: string;
  /** Most connections at once. */
  poolSize: number;
  /** Messages per connection before it is replaced (default 100). */
  maxMessagesPerConnection?: number;
  /** Idle time before a pooled connection is closed, ms (default 30 s). */
  idleTimeoutMs?: number;
  /** How long a failed connect is repeated to later callers without retrying, ms. */
  downCacheMs?: number;
  /** Idle time after which a pooled connection gets a NOOP before reuse, ms. */
  healthCheckAfterMs?: number;
  /** Client time limits, ms. */
  timeouts?: { connect?: number; command?: number; data?: number };
  /** Clock for the pool. */
  now?: () => number;
}

function statusOf(reply: ServerReply | undefined): RecipientOutcome["status"] {
  if (reply === undefined) return "deferred";
  if (reply.code >= 200 && reply.code < 300) return "delivered";
  if (reply.code >= 500 && reply.code < 600) return "failed";
  return "deferred";
}

/** Relays to one SMTP smart host over pooled connections. */
export class SmtpBackend implements StreamingBackend {
  readonly name: string;
  #o: SmtpBackendOptions;
  #pool: SmtpPool;
  #via: string;

  /** Creates the backend; connections open on first use. */
  constructor(options: SmtpBackendOptions) {
    this.#o = options;
    this.name = options.display;
    this.#via = `${options.route} ${options.display}`;
    if (options.username !== undefined && options.security === "none") {
      logger.warning("route {route}: AUTH to {url} goes over an unencrypted connection", {
        route: options.route,
        url: options.display,
      });
    }
    this.#pool = new SmtpPool({
      name: this.#via,
      size: options.poolSize,
      maxMessagesPerConnection: options.maxMessagesPerConnection,
      idleTimeoutMs: options.idleTimeoutMs,
      downCacheMs: options.downCacheMs,
      healthCheckAfterMs: options.healthCheckAfterMs,
      now: options.now,
      connect: () => this.#connect(),
    });
  }

  /** The connection pool (stats for tests and metrics). */
  get pool(): SmtpPool {
    return this.#pool;
  }

  async #connect(): Promise<SmtpClient> {
    const o = this.#o;
    const client = await SmtpClient.connect({
      host: o.host,
      port: o.port,
      security: o.security,
      servername: o.servername,
      caCerts: o.caCerts,
      verify: o.verify,
      ehloName: o.ehloName,
      timeouts: o.timeouts,
      now: o.now,
    });
    try {
      if (o.username !== undefined && o.password !== undefined) {
        await client.auth({ username: o.username, password: o.password });
      }
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Borrows a connection, or gives every recipient a deferral when there is none to be had. */
  async #acquire(
    id: string,
    recipients: string[],
  ): Promise<PoolLease | { unreachable: RecipientOutcome[] }> {
    try {
      return await this.#pool.acquire();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof SmtpReplyError && error.command.startsWith("AUTH")) {
        logger.error(
          "{id}: {via} refused our AUTH ({reason}); check the route's username/password",
          {
            id,
            via: this.#via,
            reason,
          },
        );
      } else {
        logger.warning("{id}: cannot reach {via}: {reason}", { id, via: this.#via, reason });
      }
      return {
        unreachable: recipients.map((recipient) => ({
          recipient,
          status: "deferred",
          reply: `${this.#o.display}: ${reason}`,
          enhanced: error instanceof SmtpReplyError && error.reply.enhanced
            ? error.reply.enhanced.replace(/^5/, "4")
            : "4.4.1",
          via: this.#via,
        })),
      };
    }
  }

  /** Outcomes for a message the host cannot take as it is. */
  #refuse(recipients: string[], code: number, enhanced: string, text: string): RecipientOutcome[] {
    return recipients.map((recipient) => ({
      recipient,
      status: code >= 500 ? "failed" : "deferred",
      reply: `${code} ${enhanced} ${text}`,
      enhanced,
      via: this.#via,
      remoteMta: this.#o.host,
    }));
  }

  /** Checks the host's extensions against what the message needs; a refusal, or the params. */
  #plan(
    client: SmtpClient,
    recipients: string[],
    needs: { eightBit: boolean; smtputf8: boolean; size?: number; declared8bit: boolean },
  ): RecipientOutcome[] | SmtpSendParams {
    const ext = client.extensions;
    if (needs.smtputf8 && !ext.has("SMTPUTF8")) {
      return this.#refuse(
        recipients,
        554,
        "5.6.7",
        `SMTPUTF8 is required but ${this.#o.display} does not support it`,
      );
    }
    if (needs.eightBit && !ext.has("8BITMIME")) {
      return this.#refuse(
        recipients,
        554,
        "5.6.3",
        `message has 8-bit content but ${this.#o.display} does not support 8BITMIME`,
      );
    }
    const max = client.maxSize;
    if (needs.size !== undefined && max !== undefined && max > 0 && needs.size > max) {
      return this.#refuse(
        recipients,
        552,
        "5.3.4",
        `message size ${needs.size} exceeds the limit ${max} of ${this.#o.display}`,
      );
    }
    return {
      size: needs.size ?? false,
      body8bit: (needs.eightBit || needs.declared8bit) && ext.has("8BITMIME"),
      smtputf8: needs.smtputf8,
    };
  }

  /** Maps every reply of a transaction to one outcome per recipient. */
  #outcomes(result: SmtpSendResult): RecipientOutcome[] {
    const remoteMta = this.#o.host;
    return result.recipients.map((r) => {
      let reply: ServerReply | undefined;
      if (result.outcome === "mail-rejected") reply = result.mail;
      else if (!r.accepted) reply = r.reply;
      else if (result.outcome === "data-rejected") reply = result.data;
      else reply = result.final;
      return {
        recipient: r.address,
        status: statusOf(reply),
        reply: reply ? formatReply(reply) : "no reply",
        ...(reply?.enhanced ? { enhanced: reply.enhanced } : {}),
        via: this.#via,
        remoteMta,
      };
    });
  }

  /** Outcomes after the connection broke or timed out mid-transaction. */
  #broken(recipients: string[], error: unknown): RecipientOutcome[] {
    const reason = error instanceof Error ? error.message : String(error);
    return recipients.map((recipient) => ({
      recipient,
      status: "deferred",
      reply: `conversation with ${this.#o.display} failed: ${reason}`,
      enhanced: "4.4.2",
      via: this.#via,
      remoteMta: this.#o.host,
    }));
  }

  async deliver(
    envelope: Envelope,
    data: Uint8Array,
    recipients: string[],
  ): Promise<RecipientOutcome[]> {
    const id = envelope.id;
    const lease = await this.#acquire(id, recipients);
    if ("unreachable" in lease) return lease.unreachable;
    const needs = messageNeeds(envelope, data);
    const plan = this.#plan(lease.client, recipients, {
      ...needs,
      size: data.length,
      declared8bit: envelope.body === "8BITMIME",
    });
    if (Array.isArray(plan)) {
      lease.release();
      return plan;
    }
    logger.debug("{id}: sending over {via} connection #{conn}{reused}", {
      id,
      via: this.#via,
      conn: lease.connectionId,
      reused: lease.reused ? " (reused)" : "",
    });
    try {
      const result = await lease.client.send({
        from: envelope.from,
        to: recipients,
        data,
        params: plan,
        rset: lease.reused,
      });
      lease.release();
      return this.#outcomes(result);
    } catch (error) {
      lease.release(false);
      logger.warning("{id}: connection #{conn} to {via} failed: {error}", {
        id,
        conn: lease.connectionId,
        via: this.#via,
        error: error instanceof Error ? error.message : String(error),
      });
      return this.#broken(recipients, error);
    }
  }

  async stream(envelope: Envelope, source: AsyncIterable<Uint8Array>): Promise<StreamedDelivery> {
    const input = source[Symbol.asyncIterator]();
    let sourceError: { error: unknown } | null = null;
    let sourceDone = false;
    const next = async (): Promise<IteratorResult<Uint8Array>> => {
      try {
        const item = await input.next();
        if (item.done) sourceDone = true;
        return item;
      } catch (error) {
        sourceError = { error };
        throw error;
      }
    };
    // No `return` method: a send that stops early must not end the client's stream.
    const view: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next }) };
    const recipients = envelope.recipients;
    let outcomes: RecipientOutcome[];
    let final: ServerReply | undefined;
    const lease = await this.#acquire(envelope.id, recipients);
    if ("unreachable" in lease) {
      outcomes = lease.unreachable;
    } else {
      // The bytes are not here yet: judge by what the client declared.
      const plan = this.#plan(lease.client, recipients, {
        eightBit: envelope.body === "8BITMIME",
        smtputf8: envelope.smtputf8 === true,
        declared8bit: envelope.body === "8BITMIME",
      });
      if (Array.isArray(plan)) {
        lease.release();
        outcomes = plan;
      } else {
        try {
          const result = await lease.client.send({
            from: envelope.from,
            to: recipients,
            data: view,
            params: plan,
            rset: lease.reused,
          });
          lease.release();
          outcomes = this.#outcomes(result);
          if (result.outcome === "sent") final = result.final;
        } catch (error) {
          lease.release(false);
          if (sourceError !== null) throw (sourceError as { error: unknown }).error;
          outcomes = this.#broken(recipients, error);
        }
      }
    }
    // The client's DATA must be read to its end whatever the backend said.
    while (!sourceDone) await next();
    if (final && outcomes.every((o) => o.status === "delivered")) {
      return { reply: toReply(final), recipients: outcomes };
    }
    const first = outcomes.find((o) => o.status !== "delivered") ?? outcomes[0];
    return { reply: outcomeReply(first), recipients: outcomes };
  }

  /** Closes the pool (QUIT to idle connections). */
  close(): Promise<void> {
    return this.#pool.close();
  }
}

function toReply(reply: ServerReply): StreamedDelivery["reply"] {
  const text = reply.lines.join(" ");
  return {
    code: reply.code,
    ...(reply.enhanced ? { enhanced: reply.enhanced } : {}),
    text: reply.enhanced && text.startsWith(reply.enhanced)
      ? text.slice(reply.enhanced.length).trimStart()
      : text,
  };
}

/** A reply for the client from an outcome whose `reply` may or may not start with a code. */
function outcomeReply(outcome: RecipientOutcome): StreamedDelivery["reply"] {
  const match = /^([245]\d\d)(?: ([245]\.\d{1,3}\.\d{1,3}))?(?: (.*))?$/s.exec(outcome.reply);
  if (match) {
    const enhanced = match[2] ?? outcome.enhanced;
    return { code: Number(match[1]), ...(enhanced ? { enhanced } : {}), text: match[3] ?? "" };
  }
  const code = outcome.status === "failed" ? 554 : outcome.status === "deferred" ? 451 : 250;
  return {
    code,
    ...(outcome.enhanced ? { enhanced: outcome.enhanced } : {}),
    text: outcome.reply,
  };
}
