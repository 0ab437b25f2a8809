/**
 * The listeners: SMTPS (implicit TLS from the first byte) and submission
 * (plain until STARTTLS). Both accept on `node:net` with TCP_NODELAY; SMTPS
 * wraps each socket in TLS at accept. Connection caps are enforced before any
 * work is done for a connection, and shutdown is graceful.
 *
 * @module
 */
import { parseListen } from "../config/listen.ts";
import net from "node:net";
import type tls from "node:tls";
import { log } from "../observability/logger.ts";
import type { ListenerObserver } from "../observability/metrics.ts";
import { upgradeServerSocket } from "../tls/mod.ts";
import type { ConnectionRateLimiter, ConnectionSlots } from "../policy/connection_rate.ts";
import { normalizeAddress, SocketStream, type TlsInfo } from "./byte_stream.ts";
import {
  acceptProxyConnection,
  type ProxyListenerOptions,
  ProxyProtocolError,
} from "./proxy_protocol.ts";
import { encodeReply, formatReply, Replies, type SmtpReply } from "./replies.ts";
import { type ListenerKind, Session, type SessionContext } from "./session.ts";

/** How long a refused submission connection may stay half open after its 421. */
const REFUSED_LINGER_MS = 2000;

const logger = log("smtp");

/** One listener to open. */
export interface ListenerSpec {
  kind: ListenerKind;
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  /**
   * Every connection starts with a PROXY protocol header from a trusted
   * proxy; its source address becomes the client's address (absent: off).
   */
  proxy?: ProxyListenerOptions;
}

/**
 * Admission of connections: the global and per-address caps, the
 * per-address rate and the shared slots. One gate counts every connection
 * of the process; session workers reach the main thread's gate through
 * their RPC so the caps stay exact across threads.
 */
export interface ConnectionGate {
  /** A TCP connection was accepted on a listener; counted until {@link GateTicket.close}. */
  open(kind: ListenerKind, options?: GateOpenOptions): GateTicket;
}

/** What the gate is told about a connection it opens. */
export interface GateOpenOptions {
  /**
   * The client's address comes later (after a PROXY header), so
   * {@link GateTicket.admit} may be a while; otherwise it follows at once.
   */
  awaitingAddress?: boolean;
}

/** One accepted connection at the {@link ConnectionGate}. */
export interface GateTicket {
  /**
   * The client's address is known (after a PROXY header): counts it and
   * answers whether the connection may go on (`null`) or the refusal.
   */
  admit(ip: string): Promise<SmtpReply | null>;
  /** The socket closed: its counts and slot are released. Idempotent. */
  close(): void;
}

/** Options for {@link LocalConnectionGate}. */
export interface LocalConnectionGateOptions {
  /** Name in the refusal replies. */
  hostname: string;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** New connections per client address per minute (0/absent: unlimited). */
  connectionRate?: ConnectionRateLimiter;
  /** Told of each accepted connection (metrics). */
  observer?: ListenerObserver;
  /** Concurrent connections per client address across all nodes (shared state). */
  connectionSlots?: ConnectionSlots;
}

/** The gate that counts in this thread: every listener of the process shares one. */
export class LocalConnectionGate implements ConnectionGate {
  readonly #options: LocalConnectionGateOptions;
  readonly #perIp = new Map<string, number>();
  #connections = 0;

  /** @param options the caps and limiters */
  constructor(options: LocalConnectionGateOptions) {
    this.#options = options;
  }

  /** Number of open connections. */
  get connections(): number {
    return this.#connections;
  }

  open(kind: ListenerKind): GateTicket {
    const options = this.#options;
    const perIp = this.#perIp;
    this.#connections++;
    options.observer?.connectionOpened(kind);
    // Counted per client address once that is known (after a PROXY header).
    let counted: string | null = null;
    let closed = false;
    let release: (() => void) | undefined;
    return {
      admit: async (ip) => {
        if (!closed) {
          counted = ip;
          perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
        }
        const host = options.hostname;
        if (this.#connections > options.maxConnections) return Replies.tooManyConnections(host);
        if ((perIp.get(ip) ?? 0) > options.maxConnectionsPerIp) {
          return Replies.tooManyConnectionsFromIp(host, ip);
        }
        if (options.connectionRate && !await options.connectionRate.allow(ip)) {
          return Replies.connectionRateExceeded(host, ip);
        }
        const slot = await options.connectionSlots?.acquire(ip);
        if (slot === null) return Replies.tooManyConnectionsFromIp(host, ip);
        if (slot && closed) slot();
        else release = slot;
        return null;
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.#connections--;
        release?.();
        if (counted === null) return;
        const n = (perIp.get(counted) ?? 1) - 1;
        if (n <= 0) perIp.delete(counted);
        else perIp.set(counted, n);
      },
    };
  }
}

/** Options for {@link SmtpServer}. */
export interface SmtpServerOptions {
  listeners: ListenerSpec[];
  /** Everything a session needs except which listener it came from. */
  session: Omit<SessionContext, "kind" | "tlsAvailable">;
  /** Current TLS context (re-read per connection, so a reload applies to new ones). */
  secureContext: (() => tls.SecureContext) | null;
  /** Another certificate for a client's SNI name (`[[tls.certificates]]`). */
  sni?: (servername: string) => tls.SecureContext | undefined;
  handshakeTimeoutMs: number;
  /** Admits connections (caps, rates, slots); one per process. */
  gate: ConnectionGate;
  /**
   * Bind with `SO_REUSEPORT`, so that several threads serve one port (the
   * kernel spreads new connections over them); `listen` must name the port.
   */
  reusePort?: boolean;
  /** Told the number of running sessions whenever it changes. */
  onSessions?: (count: number) => void;
}

/** A bound listener's address. */
export interface BoundListener {
  kind: ListenerKind;
  hostname: string;
  port: number;
}

/** Runs the SMTP listeners and every session on them. */
export class SmtpServer {
  #options: SmtpServerOptions;
  #servers: net.Server[] = [];
  #sessions = new Set<Session>();
  /** Connections without a session yet (PROXY header, admission, TLS handshake). */
  #unsessioned = new Set<net.Socket>();
  #connections = 0;
  #closing = false;
  /** Aborts PROXY header reads still pending at shutdown. */
  #stopping = new AbortController();
  #bound: BoundListener[] = [];

  /** @param options listeners, limits and the session context */
  constructor(options: SmtpServerOptions) {
    this.#options = options;
  }

  /** The addresses actually bound (after {@link start}). */
  get listeners(): BoundListener[] {
    return this.#bound;
  }

  /** Number of SMTP sessions running. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Number of open connections. */
  get connections(): number {
    return this.#connections;
  }

  /** Opens every listener; rejects (closing what was opened) if one cannot bind. */
  async start(): Promise<void> {
    try {
      for (const spec of this.#options.listeners) {
        const { hostname: host, port } = parseListen(spec.listen);
        const server = net.createServer(
          // allowHalfOpen: a client that half-closes after pipelining still gets every
          // reply; the session ends the socket itself.
          { noDelay: true, allowHalfOpen: true },
          (socket) => this.#accept(spec, socket),
        );
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host, port, reusePort: this.#options.reusePort }, () => {
            server.off("error", reject);
            resolve();
          });
        });
        server.on(
          "error",
          (error) => logger.error("listener error: {error}", { error: String(error) }),
        );
        const address = server.address() as net.AddressInfo;
        this.#servers.push(server);
        this.#bound.push({ kind: spec.kind, hostname: host, port: address.port });
      }
    } catch (error) {
      await this.#closeListeners();
      throw error;
    }
  }

  #accept(spec: ListenerSpec, socket: net.Socket): void {
    socket.setNoDelay(true);
    const peer = normalizeAddress(socket.remoteAddress ?? "unknown");
    if (this.#closing) {
      socket.destroy();
      return;
    }
    this.#connections++;
    this.#unsessioned.add(socket);
    const ticket = this.#options.gate.open(spec.kind, {
      awaitingAddress: spec.proxy !== undefined,
    });
    socket.once("close", () => {
      this.#connections--;
      this.#unsessioned.delete(socket);
      ticket.close();
    });
    socket.on("error", () => {/* reported through the stream or the close */});
    void this.#open(spec, socket, peer, ticket).catch((error) => {
      logger.debug("connection from {ip} ended before its session: {error}", {
        ip: peer,
        error: String(error instanceof Error ? error.message : error),
      });
      socket.destroy();
    });
  }

  /**
   * Reads the PROXY header on a listener that expects one. Refusals (an
   * untrusted peer, a bad or missing header) close the socket without a
   * greeting and are audited; `null` then.
   */
  async #proxied(
    spec: ListenerSpec & { proxy: ProxyListenerOptions },
    socket: net.Socket,
    peer: string,
  ): Promise<{ address: string; port: number; tls: TlsInfo | null } | null> {
    try {
      return await acceptProxyConnection(socket, {
        ...spec.proxy,
        tlsTerminated: spec.kind === "submission" && spec.proxy.tlsTerminated,
        signal: this.#stopping.signal,
      });
    } catch (error) {
      if (!(error instanceof ProxyProtocolError)) throw error;
      socket.destroy();
      // A proxy's TCP health check connects and closes without a byte: not an incident.
      if (error.reason === "aborted" || (error.reason === "closed" && error.received === 0)) {
        logger.debug("connection from {ip} closed before its PROXY header", { ip: peer });
        return null;
      }
      logger.warning("PROXY protocol: closing connection from {ip} on {port}: {reason}", {
        ip: peer,
        port: spec.kind,
        reason: error.message,
      });
      this.#options.session.audit.record({
        event: "security_proxy_protocol",
        ip: peer,
        port: spec.kind,
        reason: error.reason,
        detail: error.message,
      });
      return null;
    }
  }

  async #open(
    spec: ListenerSpec,
    socket: net.Socket,
    peer: string,
    ticket: GateTicket,
  ): Promise<void> {
    const kind = spec.kind;
    let client: { address: string; port: number; tls: TlsInfo | null } | null = null;
    if (spec.proxy) {
      client = await this.#proxied({ ...spec, proxy: spec.proxy }, socket, peer);
      if (client === null) return;
    }
    const ip = client?.address ?? peer;
    const refusal = await ticket.admit(ip);
    const makeContext = this.#options.secureContext;
    if (refusal) {
      this.#refuse(kind, socket, ip, refusal);
      return;
    }
    const named = client
      ? {
        remoteAddress: client.address,
        remotePort: client.port,
        ...(client.tls ? { proxiedTls: client.tls } : {}),
      }
      : {};
    let stream: SocketStream;
    if (kind === "smtps") {
      if (!makeContext) throw new Error("SMTPS listener without TLS");
      let secure;
      try {
        secure = await upgradeServerSocket(socket, makeContext(), {
          handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
          sni: this.#options.sni,
        });
      } catch (error) {
        const reason = String(error instanceof Error ? error.message : error);
        logger.info("SMTPS handshake with [{ip}] failed: {reason}", { ip, reason });
        this.#options.session.audit.record({
          event: "security_tls_failed",
          ip,
          port: kind,
          listener: kind,
          reason,
        });
        throw error;
      }
      stream = new SocketStream(secure, named);
    } else {
      stream = new SocketStream(socket, {
        secureContext: makeContext ?? undefined,
        sni: this.#options.sni,
        handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
        ...named,
      });
    }
    const session = new Session(stream, {
      ...this.#options.session,
      kind,
      tlsAvailable: makeContext !== null,
    });
    this.#sessions.add(session);
    this.#unsessioned.delete(socket);
    this.#options.onSessions?.(this.#sessions.size);
    if (this.#closing) session.requestShutdown();
    try {
      await session.run();
    } finally {
      this.#sessions.delete(session);
      this.#options.onSessions?.(this.#sessions.size);
    }
  }

  /**
   * Turns a connection away before any TLS work: on submission with the
   * 421 in plain text; on SMTPS, where no reply can be read before a
   * handshake, by closing at once (a handshake per refused connection would
   * hand a flood the CPU the caps are there to protect).
   */
  #refuse(kind: ListenerKind, socket: net.Socket, ip: string, refusal: SmtpReply): void {
    logger.info("refusing connection from [{ip}] on {port}: {reason}", {
      ip,
      port: kind,
      reason: formatReply(refusal).trimEnd(),
    });
    this.#options.session.audit.record({
      event: "rate_limit",
      ip,
      port: kind,
      reason: "connection_limit",
    });
    if (kind === "smtps") {
      socket.destroy();
      return;
    }
    socket.end(encodeReply(refusal));
    // The listener allows half-open sockets: a client that never closes its
    // side would keep counting against its address's cap. It has its 421.
    const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
    socket.once("close", () => clearTimeout(timer));
  }

  async #closeListeners(): Promise<void> {
    const servers = this.#servers;
    this.#servers = [];
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  /**
   * Stops accepting, sends 421 to idle sessions, lets busy ones finish their
   * transaction, and after `graceMs` closes whatever is left with 421.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#stopping.abort();
    const listenersClosed = this.#closeListeners();
    for (const session of this.#sessions) session.requestShutdown();
    const deadline = Date.now() + graceMs;
    while (this.#sessions.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await Promise.all([...this.#sessions].map((s) => s.forceClose()));
    // Connections that never got a session (a client silent before its TLS
    // ClientHello, a health check) would hold the listener's close for the
    // whole handshake timeout: a handshake not finished by now is cut.
    for (const socket of this.#unsessioned) socket.destroy();
    // Let sockets finish closing so nothing leaks past shutdown.
    const waitUntil = Date.now() + 2000;
    while ((this.#sessions.size > 0 || this.#connections > 0) && Date.now() < waitUntil) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await listenersClosed;
  }
}
