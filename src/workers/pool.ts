/**
 * `server.workers` > 1: the SMTP sessions run on that many Deno Workers, each
 * with its own `node:net` listeners on the same ports (`reusePort`), and the
 * main thread serves them everything stateful over one RPC channel each
 * (`protocol.ts`): the one connection gate, authenticators, lockouts, the
 * policy with its quotas, the audit trail and the message sink (one durable
 * writer). So every cap, rate limit, lockout and quota counts exactly as with
 * one thread.
 *
 * Ports: the main thread binds each listener once (port 0 becomes a free
 * port), the workers bind the resolved port, then the main thread lets go.
 * A worker that crashes is logged, what it held is released (its messages
 * aborted, its connections uncounted) and it is started again.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { AuditEvent } from "../audit/audit_log.ts";
import { parseListen } from "../config/listen.ts";
import { log } from "../observability/logger.ts";
import type { LoginTicket } from "../policy/lockout.ts";
import type { PolicyClient, PolicyTransaction } from "../smtp/policy.ts";
import type { BoundListener, GateTicket, SmtpServerOptions } from "../smtp/server.ts";
import type { ListenerKind } from "../smtp/session.ts";
import type { SinkTransaction } from "../smtp/sink.ts";
import type { SniCertificates } from "../tls/sni.ts";
import type { TlsContextProvider } from "../tls/context.ts";
import {
  type ClientData,
  type MainApi,
  PLAIN_SESSION_KEYS,
  type TlsSnapshot,
  type WorkerApi,
  type WorkerInit,
  type WorkerListener,
} from "./protocol.ts";
import { SESSION_WORKER_BASE64 } from "./session_worker_bundle.ts";
import { RpcPeer } from "./rpc.ts";

const logger = log("workers");

/** Bytes of a message the main thread takes before it tells the worker (batched acks). */
const ACK_EVERY = 64 * 1024;
/** Wait before a crashed worker is started again. */
const RESTART_DELAY_MS = 500;

const SOURCE = new URL("./session_worker.ts", import.meta.url);

/**
 * The worker module: its source file when it can be read (`deno run` with
 * read access: edits apply at once), else the bundle as a `data:` URL, which
 * needs no permission (the compiled binary's narrow `--allow-read`).
 */
function defaultWorkerUrl(): URL | string {
  if (
    SOURCE.protocol === "file:" &&
    Deno.permissions.querySync({ name: "read", path: SOURCE }).state === "granted"
  ) return SOURCE;
  return `data:text/javascript;base64,${SESSION_WORKER_BASE64}`;
}

/** Options for {@link SessionWorkers}. */
export interface SessionWorkersOptions {
  /** Number of workers (2 or more). */
  count: number;
  /** What one {@link SmtpServer} would get; its live objects are served to the workers. */
  server: Omit<SmtpServerOptions, "reusePort" | "onSessions">;
  /** The certificates (sent to the workers as PEM, again after each reload). */
  tls: TlsContextProvider | null;
  sni: SniCertificates | null;
  /** The wrong-password fingerprint key (shared so a repeat counts once on any worker). */
  fingerprintKey?: Uint8Array;
  /** Lowest log level the workers forward. */
  logLevel: WorkerInit["logLevel"];
  /** Told of each connection a worker accepted (1-based worker number). */
  onConnection?: (worker: number) => void;
  /** Worker module to load instead of the default (tests). */
  workerUrl?: URL | string;
}

/** One running worker and what the main thread holds for it. */
class WorkerSlot {
  readonly number: number;
  readonly worker: Worker;
  readonly peer: RpcPeer<WorkerApi, MainApi>;
  /** Connections by the worker's id; `admitted` ones have a session running. */
  readonly gate = new Map<number, { ticket: GateTicket; admitted: boolean }>();
  readonly logins = new Map<number, LoginTicket>();
  readonly transactions = new Map<number, PolicyTransaction>();
  readonly sinks = new Map<number, { tx: SinkTransaction; unacked: number }>();
  sessions = 0;
  connections = 0;
  #next = 1;

  constructor(number: number, url: URL | string, handlers: (slot: WorkerSlot) => MainApi) {
    this.number = number;
    this.worker = new Worker(url, { type: "module", name: `session-worker-${number}` });
    this.peer = new RpcPeer<WorkerApi, MainApi>(this.worker, handlers(this));
  }

  id(): number {
    return this.#next++;
  }

  /** Lets go of everything the worker held (it stopped or crashed). */
  release(reason: string): void {
    for (const { ticket } of this.gate.values()) ticket.close();
    this.gate.clear();
    for (const ticket of this.logins.values()) void ticket.finish("neutral").catch(() => {});
    this.logins.clear();
    for (const tx of this.transactions.values()) void tx.end(false).catch(() => {});
    this.transactions.clear();
    for (const { tx } of this.sinks.values()) void tx.abort(reason);
    this.sinks.clear();
    this.sessions = 0;
  }
}

/** The session workers; the same face as {@link SmtpServer} for the relay. */
export class SessionWorkers {
  readonly #options: SessionWorkersOptions;
  readonly #url: URL | string;
  #slots: (WorkerSlot | null)[] = [];
  #bound: BoundListener[] = [];
  #init: ((worker: number) => WorkerInit) | null = null;
  #closing = false;
  /** Set once every worker started: a crash before that fails the start instead. */
  #running = false;
  #restarts = new Set<Promise<void>>();

  /** @param options the count, the server options to serve, TLS, logging */
  constructor(options: SessionWorkersOptions) {
    if (options.count < 2) throw new RangeError("session workers: count must be at least 2");
    this.#options = options;
    this.#url = options.workerUrl ?? defaultWorkerUrl();
  }

  /** The addresses bound (after {@link start}). */
  get listeners(): BoundListener[] {
    return this.#bound;
  }

  /** Sessions running on every worker. */
  get sessions(): number {
    return this.#slots.reduce((sum, slot) => sum + (slot?.sessions ?? 0), 0);
  }

  /** Connections each worker accepted since it started (index 0 is worker 1). */
  get connectionsPerWorker(): number[] {
    return this.#slots.map((slot) => slot?.connections ?? 0);
  }

  /** The certificates as the workers get them. */
  #tlsSnapshot(): TlsSnapshot | null {
    const tls = this.#options.tls;
    if (!tls) return null;
    return { ...tls.material, minVersion: tls.minVersion, sni: this.#options.sni?.material ?? [] };
  }

  /** Sends the current certificates to every worker (after a reload). */
  pushTls(): void {
    const snapshot = this.#tlsSnapshot();
    if (!snapshot) return;
    for (const slot of this.#slots) slot?.peer.notify("tls", [snapshot]);
  }

  /**
   * Starts worker 1 on the configured addresses (port 0 picks a free port),
   * then the others on the ports it bound; rejects (stopping what started)
   * if a listener cannot be bound.
   */
  async start(): Promise<void> {
    const options = this.#options;
    const server = options.server;
    const session = server.session;
    try {
      let listeners: WorkerListener[] = server.listeners.map((spec) => {
        const { hostname: host, port } = parseListen(spec.listen);
        return {
          kind: spec.kind,
          host,
          port,
          proxy: spec.proxy && {
            trusted: [...spec.proxy.trusted.sources],
            tlsTerminated: spec.proxy.tlsTerminated ?? false,
            headerTimeoutMs: spec.proxy.headerTimeoutMs,
          },
        };
      });
      const bearerNames = Object.keys(session.bearerMechanisms ?? {});
      this.#init = (worker) => ({
        worker,
        logLevel: options.logLevel,
        listeners,
        tls: this.#tlsSnapshot(),
        handshakeTimeoutMs: server.handshakeTimeoutMs,
        session: Object.fromEntries(
          PLAIN_SESSION_KEYS.map((key) => [key, session[key]]),
        ) as WorkerInit["session"],
        bearer: session.bearer
          ? {
            mechanisms: bearerNames,
            openidConfiguration: session.bearer.openidConfiguration,
          }
          : null,
        fingerprintKey: options.fingerprintKey,
        has: {
          lockout: session.lockout !== undefined,
          policyConnect: session.policy.connect !== undefined,
          policyAuth: session.policy.auth !== undefined,
        },
      });
      this.#slots = new Array(options.count).fill(null);
      // The first worker resolves port 0; the rest join its sockets' ports (reusePort).
      this.#bound = await this.#startWorker(1);
      listeners = listeners.map((l, i) => ({ ...l, port: this.#bound[i].port }));
      await Promise.all(this.#slots.slice(1).map((_, index) => this.#startWorker(index + 2)));
      options.tls?.onReload(() => this.pushTls());
      this.#running = true;
    } catch (error) {
      await this.#stopWorkers(0);
      throw error;
    }
  }

  async #startWorker(number: number): Promise<BoundListener[]> {
    const slot = new WorkerSlot(number, this.#url, (s) => this.#handlers(s));
    this.#slots[number - 1] = slot;
    slot.worker.addEventListener("error", (event) => {
      event.preventDefault();
      this.#crashed(slot, event.message);
    });
    slot.worker.addEventListener("messageerror", () => {
      this.#crashed(slot, "a message could not be read");
    });
    try {
      return await slot.peer.call("start", this.#init!(number));
    } catch (error) {
      this.#stopSlot(slot, "start failed");
      throw error;
    }
  }

  #stopSlot(slot: WorkerSlot, reason: string): void {
    slot.peer.close();
    slot.worker.terminate();
    slot.release(reason);
    if (this.#slots[slot.number - 1] === slot) this.#slots[slot.number - 1] = null;
  }

  /** A worker died: log it, release what it held, start another. */
  #crashed(slot: WorkerSlot, message: string): void {
    if (this.#slots[slot.number - 1] !== slot) return;
    logger.error(
      "session worker {worker} crashed ({error}); its {sessions} sessions are lost, restarting it",
      { worker: slot.number, error: message, sessions: slot.sessions },
    );
    this.#stopSlot(slot, `session worker ${slot.number} crashed`);
    if (this.#closing || !this.#running) return;
    const restart = (async () => {
      await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
      if (this.#closing) return;
      try {
        await this.#startWorker(slot.number);
        logger.info("session worker {worker} restarted", { worker: slot.number });
      } catch (error) {
        logger.error("session worker {worker} did not restart: {error}", {
          worker: slot.number,
          error: String(error instanceof Error ? error.message : error),
        });
      }
    })();
    this.#restarts.add(restart);
    void restart.finally(() => this.#restarts.delete(restart));
  }

  /** For tests: makes worker `number` (1-based) crash as a bug would. */
  crashForTest(number: number): void {
    this.#slots[number - 1]?.worker.postMessage({ crash: true });
  }

  #handlers(slot: WorkerSlot): MainApi {
    const server = this.#options.server;
    const session = server.session;
    const client = (data: ClientData): PolicyClient => ({
      ...data,
      audit: (event, fields) =>
        session.audit.record({
          event,
          session: data.session,
          ip: data.ip,
          port: data.port,
          ...fields,
        }),
    });
    const open = (id: number, kind: ListenerKind) => {
      slot.connections++;
      this.#options.onConnection?.(slot.number);
      slot.gate.set(id, { ticket: server.gate.open(kind), admitted: false });
    };
    const known = <T>(map: Map<number, T>, id: number): T => {
      const found = map.get(id);
      if (found === undefined) throw new Error(`session worker ${slot.number}: unknown id ${id}`);
      return found;
    };
    return {
      log: (record) => {
        getLogger(record.category).emit({
          level: record.level,
          message: record.message,
          rawMessage: record.rawMessage,
          timestamp: record.timestamp,
          properties: { ...record.properties, worker: slot.number },
        });
      },
      audit: (event: AuditEvent) => session.audit.record(event),
      gateOpen: (id, kind) => open(id, kind),
      gateClose: (id) => {
        const entry = slot.gate.get(id);
        if (!entry) return;
        slot.gate.delete(id);
        entry.ticket.close();
        if (entry.admitted) slot.sessions--;
      },
      gateAdmit: async (id, ip, kind) => {
        if (kind) open(id, kind);
        const entry = slot.gate.get(id);
        // Closed before its address was known: not counted any more, nothing to refuse.
        if (!entry) return null;
        const refusal = await entry.ticket.admit(ip);
        // Admitted and still open: its session runs (until the close).
        if (!refusal && slot.gate.get(id) === entry) {
          entry.admitted = true;
          slot.sessions++;
        }
        return refusal;
      },
      verifyPassword: (username, password) =>
        session.authenticator.verifyPassword(username, password),
      verifyBearer: (username, token) => {
        if (!session.bearer) throw new Error("no bearer verifier");
        return session.bearer.verifyBearer(username, token);
      },
      lockoutAdmitAddress: (ip) => session.lockout!.admitAddress(ip),
      lockoutBegin: async (attempt) => {
        const answer = await session.lockout!.begin(attempt);
        if (!answer.allowed) return { ...answer };
        const ticket = slot.id();
        slot.logins.set(ticket, answer);
        return { allowed: true, delayMs: answer.delayMs, scope: answer.scope, ticket };
      },
      lockoutFinish: (ticket, outcome) => {
        const login = known(slot.logins, ticket);
        slot.logins.delete(ticket);
        return login.finish(outcome);
      },
      policyConnect: async (data) => (await session.policy.connect?.(client(data))) ?? null,
      policyAuth: async (data, identity) =>
        (await session.policy.auth?.(client(data), identity)) ?? null,
      policyMail: async (data, identity, sender, params) => {
        const verdict = await session.policy.mail(client(data), identity, sender, params);
        if ("reply" in verdict) return { reply: verdict.reply };
        const transaction = slot.id();
        slot.transactions.set(transaction, verdict.transaction);
        return { transaction };
      },
      txRcpt: (tx, address) => known(slot.transactions, tx).rcpt(address),
      txData: (tx) => known(slot.transactions, tx).data(),
      txMessage: (tx, message) => known(slot.transactions, tx).message(message),
      txEnd: (tx, accepted) => {
        const transaction = slot.transactions.get(tx);
        slot.transactions.delete(tx);
        void transaction?.end(accepted).catch((error: unknown) =>
          logger.error("policy: ending a transaction failed: {error}", { error: String(error) })
        );
      },
      sinkBegin: (id, envelope) => {
        slot.sinks.set(id, { tx: session.sink.begin(envelope), unacked: 0 });
      },
      sinkWrite: (id, bytes) => {
        const entry = slot.sinks.get(id);
        if (!entry) return;
        entry.tx.write(bytes);
        entry.unacked += bytes.byteLength;
        if (entry.unacked < ACK_EVERY) return;
        const taken = entry.unacked;
        entry.unacked = 0;
        const ack = () => slot.peer.notify("sinkAck", [id, taken]);
        const drained = entry.tx.drain();
        if (drained) drained.then(ack, ack);
        else ack();
      },
      sinkCommit: (id) => {
        const { tx } = known(slot.sinks, id);
        slot.sinks.delete(id);
        return tx.commit();
      },
      sinkAbort: (id, reason) => {
        const entry = slot.sinks.get(id);
        slot.sinks.delete(id);
        void entry?.tx.abort(reason);
      },
    };
  }

  async #stopWorkers(graceMs: number): Promise<void> {
    await Promise.all(this.#slots.map(async (slot) => {
      if (!slot) return;
      const deadline = graceMs + 5_000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        slot.peer.call("shutdown", graceMs).catch(() => {}),
        new Promise((resolve) => timer = setTimeout(resolve, deadline)),
      ]);
      clearTimeout(timer);
      this.#stopSlot(slot, "relay stopped");
    }));
  }

  /**
   * Stops accepting on every worker, lets their sessions finish within
   * `graceMs` (421 to idle ones), then terminates the workers.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#restarts);
    await this.#stopWorkers(graceMs);
  }
}
