/**
 * What the main thread and a session worker say to each other (see
 * `rpc.ts`). The main thread keeps everything stateful — the connection
 * gate, authenticators and their hash workers, lockouts, the submission
 * policy with its quotas, the audit trail, metrics, and the message sink
 * with the one durable writer — and serves it as {@link MainApi}; a worker
 * runs the listeners, TLS and the protocol layer and serves
 * {@link WorkerApi}.
 *
 * @module
 */
import type { AuditEvent } from "../audit/audit_log.ts";
import type { AuthResult, BearerResult } from "../auth/authenticator.ts";
import type { Envelope } from "../mail/envelope.ts";
import type {
  LockoutBlock,
  LockoutRefusal,
  LockoutScope,
  LoginAttempt,
  LoginOutcome,
} from "../policy/lockout.ts";
import type { AuthenticatedIdentity } from "../smtp/auth_exchange.ts";
import type { MailParams } from "../smtp/commands.ts";
import type { ReceivedMessage, Verdict } from "../smtp/policy.ts";
import type { SmtpReply } from "../smtp/replies.ts";
import type { BoundListener } from "../smtp/server.ts";
import type { ListenerKind, SessionContext } from "../smtp/session.ts";
import type { SinkResult } from "../smtp/sink.ts";
import type { TlsMinVersion } from "../tls/context.ts";

/** The certificates a worker serves, as PEM (sent at start and after every reload). */
export interface TlsSnapshot {
  cert: string;
  key: string;
  minVersion: TlsMinVersion;
  /** `[[tls.certificates]]`: extra pairs and the names they serve. */
  sni: { names: string[]; cert: string; key: string }[];
}

/** A listener a worker opens (the port already resolved by the main thread). */
export interface WorkerListener {
  kind: ListenerKind;
  host: string;
  port: number;
  /** PROXY protocol: the trusted proxies' addresses and ranges, as configured. */
  proxy?: { trusted: string[]; tlsTerminated: boolean; headerTimeoutMs?: number };
}

/** The session settings that are plain values (the rest are the main thread's objects). */
export const PLAIN_SESSION_KEYS = [
  "hostname",
  "maxMessageBytes",
  "maxRecipients",
  "commandTimeoutMs",
  "dataTimeoutMs",
  "dataMinBytesPerSecond",
  "dataRateGraceMs",
  "sessionMaxMs",
  "postmaster",
  "abuse",
] as const satisfies readonly (keyof SessionContext)[];

/** One of {@link PLAIN_SESSION_KEYS}. */
export type PlainSessionKey = typeof PLAIN_SESSION_KEYS[number];

/** Everything a worker needs to start: plain values only. */
export interface WorkerInit {
  /** 1-based worker number (logs, metrics). */
  worker: number;
  /** Lowest log level forwarded to the main thread. */
  logLevel: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  listeners: WorkerListener[];
  tls: TlsSnapshot | null;
  handshakeTimeoutMs: number;
  session: Pick<SessionContext, PlainSessionKey>;
  /** OAuth2 bearer mechanisms offered (by name) and the discovery URL for challenges. */
  bearer: { mechanisms: string[]; openidConfiguration?: string } | null;
  /** The HMAC key of wrong-password fingerprints, shared so a repeat counts once on any thread. */
  fingerprintKey?: Uint8Array;
  /** Which optional parts the main thread has. */
  has: { lockout: boolean; policyConnect: boolean; policyAuth: boolean };
}

/** A connection a policy is asked about, without its audit method. */
export interface ClientData {
  session: string;
  ip: string;
  port: ListenerKind;
}

/** A log record from a worker, re-emitted by the main thread's logger. */
export interface LogRecordData {
  category: string[];
  level: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  message: unknown[];
  rawMessage: string;
  timestamp: number;
  properties: Record<string, unknown>;
}

/** An admitted lockout attempt; {@link MainApi.lockoutFinish} settles it by `ticket`. */
export interface TicketData {
  allowed: true;
  delayMs: number;
  scope?: LockoutScope;
  ticket: number;
}

/** What the main thread serves a worker. Notices return nothing; calls resolve. */
export interface MainApi {
  /** Notice: a log record. */
  log(record: LogRecordData): void;
  /** Notice: an audit event (the session already added its id, address, port). */
  audit(event: AuditEvent): void;
  /** Notice: a connection was accepted (`id` is the worker's); PROXY listeners, before the header. */
  gateOpen(id: number, kind: ListenerKind): void;
  /** Notice: that connection closed. */
  gateClose(id: number): void;
  /**
   * The client's address is known: count and admit it. `open` (the listener)
   * when the connection was not announced by {@link MainApi.gateOpen} (no
   * PROXY header to wait for: one message instead of two).
   */
  gateAdmit(id: number, ip: string, open?: ListenerKind): Promise<SmtpReply | null>;
  verifyPassword(username: string, password: string): Promise<AuthResult>;
  verifyBearer(username: string | null, token: string): Promise<BearerResult>;
  lockoutAdmitAddress(ip: string): Promise<LockoutRefusal | null>;
  lockoutBegin(attempt: LoginAttempt): Promise<LockoutRefusal | TicketData>;
  lockoutFinish(
    ticket: number,
    outcome: LoginOutcome,
  ): Promise<{ blocks: LockoutBlock[]; next: LockoutRefusal | null }>;
  policyConnect(client: ClientData): Promise<Verdict>;
  policyAuth(client: ClientData, identity: AuthenticatedIdentity): Promise<Verdict>;
  policyMail(
    client: ClientData,
    identity: AuthenticatedIdentity,
    sender: string,
    params: MailParams,
  ): Promise<{ reply: SmtpReply } | { transaction: number }>;
  txRcpt(tx: number, address: string): Promise<Verdict>;
  txData(tx: number): Promise<Verdict>;
  txMessage(tx: number, message: ReceivedMessage): Promise<Verdict>;
  /** Notice: the transaction is over (nothing to wait for: later calls are handled after it). */
  txEnd(tx: number, accepted: boolean): void;
  /** Notice: a message starts (`id` is the worker's). */
  sinkBegin(id: number, envelope: Envelope): void;
  /** Notice: message bytes (the buffer is transferred). */
  sinkWrite(id: number, bytes: Uint8Array): void;
  sinkCommit(id: number): Promise<SinkResult>;
  /** Notice: drop the message. */
  sinkAbort(id: number, reason: string): void;
}

/** What a worker serves the main thread. */
export interface WorkerApi {
  /** Opens the listeners; resolves their addresses. */
  start(init: WorkerInit): Promise<BoundListener[]>;
  /** Notice: serve these certificates to new connections. */
  tls(snapshot: TlsSnapshot): void;
  /** Stops accepting and drains the sessions within `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
  /** Notice: the main thread's sink took `bytes` more of message `id` (back-pressure). */
  sinkAck(id: number, bytes: number): void;
}
