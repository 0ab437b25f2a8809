/**
 * One small byte-stream interface over a `node:net` socket that may be
 * upgraded to TLS in place. The session reads and writes bytes and asks for
 * an upgrade; it never sees which kind of socket is underneath.
 *
 * Reads are pull-based over the socket's `data` events with back-pressure:
 * the socket is paused while more than {@link HIGH_WATER} bytes wait unread.
 *
 * @module
 */
import type net from "node:net";
import type tls from "node:tls";
import { TLSSocket } from "node:tls";
import { DeadlineTimer } from "../mail/mod.ts";
import { upgradeServerSocket } from "../tls/mod.ts";

/** What the session knows about an established TLS layer. */
export interface TlsInfo {
  /** `TLSv1.3`, `TLSv1.2`. */
  protocol: string;
  /** IANA cipher suite name, e.g. `TLS_AES_256_GCM_SHA384`. */
  cipher: string;
  /** The SNI name the client asked for, if any. */
  servername?: string;
}

/** The session's view of its connection. */
export interface ByteStream {
  /** Next chunk of bytes; `null` at end of stream. Rejects with {@link StreamTimeoutError}. */
  read(): Promise<Uint8Array | null>;
  /** Writes bytes; resolves once the socket has accepted them. */
  write(data: Uint8Array): Promise<void>;
  /** Starts server-side TLS in place (STARTTLS). Unread bytes are discarded first. */
  upgrade(): Promise<void>;
  /**
   * Sets a read deadline `ms` from now (`null`: none). Unlike an idle timer
   * it is not restarted by arriving bytes: once it passes, a waiting `read`
   * (and any later one that would have to wait) rejects with
   * {@link StreamTimeoutError}, however slowly bytes trickled in meanwhile.
   * Bytes already received are still returned. A new call replaces the old one.
   */
  setReadDeadline(ms: number | null): void;
  /** Closes the stream; pending reads resolve `null`. Idempotent. */
  close(): void;
  /**
   * Interrupts a pending `read` with `reason` (used by shutdown); with no
   * read pending, the next `read` rejects with it instead.
   */
  interrupt(reason: Error): void;
  /** TLS details once TLS is up, else `null`. */
  readonly tls: TlsInfo | null;
  /** The peer's address. */
  readonly remoteAddress: string;
  /** The peer's port. */
  readonly remotePort: number;
  /** Whether the stream has closed. */
  readonly closed: boolean;
}

/** A read deadline passed. */
export class StreamTimeoutError extends Error {
  constructor() {
    super("read deadline passed");
    this.name = "StreamTimeoutError";
  }
}

/** Unread bytes above which the socket is paused. */
export const HIGH_WATER = 256 * 1024;

/** Options for {@link SocketStream}. */
export interface SocketStreamOptions {
  /** Builds the secure context for STARTTLS (current certificate). */
  secureContext?: () => tls.SecureContext;
  /** Another certificate for a client's SNI name. */
  sni?: (servername: string) => tls.SecureContext | undefined;
  /** Milliseconds a TLS handshake may take. */
  handshakeTimeoutMs?: number;
  /** The client's address when a trusted proxy named it (PROXY protocol); default: the peer's. */
  remoteAddress?: string;
  /** The client's port, likewise. */
  remotePort?: number;
  /**
   * TLS that a trusted proxy terminated in front of this plain socket (PROXY
   * protocol v2 SSL TLV): {@link SocketStream.tls} reports it, so the session
   * treats the connection as TLS (and offers no STARTTLS).
   */
  proxiedTls?: TlsInfo;
}

/** {@link ByteStream} over a `node:net` or `node:tls` socket. */
export class SocketStream implements ByteStream {
  #socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | null = null;
  #waiter: { resolve: (c: Uint8Array | null) => void; reject: (e: Error) => void } | null = null;
  #interrupted: Error | null = null;
  #expired = false;
  /** The read deadline: set per command line and DATA chunk, so one lazy timer, not one per read. */
  #deadline = new DeadlineTimer(() => this.#expire());
  #tls: TlsInfo | null = null;
  #closed = false;
  #options: SocketStreamOptions;
  readonly remoteAddress: string;
  readonly remotePort: number;

  /** Wraps a connected socket (plain, or TLS already established). */
  constructor(socket: net.Socket, options: SocketStreamOptions = {}) {
    this.#socket = socket;
    this.#options = options;
    this.remoteAddress = options.remoteAddress ??
      normalizeAddress(socket.remoteAddress ?? "unknown");
    this.remotePort = options.remotePort ?? socket.remotePort ?? 0;
    if (socket instanceof TLSSocket) this.#tls = tlsInfo(socket);
    else if (options.proxiedTls) this.#tls = options.proxiedTls;
    this.#attach(socket);
    // A socket fresh from a TLS handshake arrives paused; start the flow now.
    socket.resume();
  }

  get tls(): TlsInfo | null {
    return this.#tls;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData = (chunk: Uint8Array) => {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(chunk);
      return;
    }
    this.#chunks.push(chunk);
    this.#queued += chunk.length;
    if (this.#queued > HIGH_WATER) this.#socket.pause();
  };

  #onEnd = () => {
    this.#ended = true;
    this.#wake();
  };

  #onError = (error: Error) => {
    this.#error ??= error;
    this.#ended = true;
    this.#wake();
  };

  #onClose = () => {
    this.#ended = true;
    this.#closed = true;
    this.#deadline.dispose();
    this.#wake();
  };

  #attach(socket: net.Socket): void {
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  #detach(socket: net.Socket): void {
    socket.off("data", this.#onData);
    socket.off("end", this.#onEnd);
    socket.off("error", this.#onError);
    socket.off("close", this.#onClose);
  }

  #wake(): void {
    if (!this.#waiter) return;
    const w = this.#waiter;
    this.#waiter = null;
    // A reset connection is an ordinary end for the session.
    w.resolve(null);
  }

  #expire(): void {
    this.#expired = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(new StreamTimeoutError());
  }

  setReadDeadline(ms: number | null): void {
    this.#expired = false;
    if (ms === null) this.#deadline.clear();
    else this.#deadline.set(ms);
  }

  read(): Promise<Uint8Array | null> {
    if (this.#interrupted) {
      const reason = this.#interrupted;
      this.#interrupted = null;
      return Promise.reject(reason);
    }
    if (this.#chunks.length > 0) {
      const chunk = this.#chunks.shift()!;
      this.#queued -= chunk.length;
      if (this.#queued <= HIGH_WATER && this.#socket.isPaused()) this.#socket.resume();
      return Promise.resolve(chunk);
    }
    if (this.#ended || this.#closed) return Promise.resolve(null);
    if (this.#expired) return Promise.reject(new StreamTimeoutError());
    if (this.#waiter) return Promise.reject(new Error("concurrent read"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  interrupt(reason: Error): void {
    const w = this.#waiter;
    if (!w) {
      // The session is between reads (writing, verifying a password): keep
      // the reason for its next read rather than lose it.
      this.#interrupted = reason;
      return;
    }
    this.#waiter = null;
    w.reject(reason);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      // Resolve on flush or failure alike: a dead peer shows up as EOF on read.
      this.#socket.write(data, () => resolve());
    });
  }

  async upgrade(): Promise<void> {
    const makeContext = this.#options.secureContext;
    if (!makeContext) throw new Error("TLS is not configured");
    // STARTTLS injection defence (CVE-2011-0411 class): bytes pipelined after
    // STARTTLS must not survive into the TLS session.
    this.#chunks = [];
    this.#queued = 0;
    const raw = this.#socket;
    this.#detach(raw);
    let secure: TLSSocket;
    try {
      secure = await upgradeServerSocket(raw, makeContext(), {
        handshakeTimeoutMs: this.#options.handshakeTimeoutMs ?? 30_000,
        sni: this.#options.sni,
      });
    } catch (error) {
      this.#ended = true;
      this.#closed = true;
      this.#deadline.dispose();
      throw error;
    }
    secure.setNoDelay(true);
    this.#socket = secure;
    this.#tls = tlsInfo(secure);
    this.#attach(secure);
    // upgradeServerSocket hands the socket over paused, so nothing is lost.
    secure.resume();
  }

  close(): void {
    this.#deadline.dispose();
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    this.#wake();
    const socket = this.#socket;
    // end() flushes what was written; destroy soon after in case the peer stalls.
    socket.end();
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.once("close", () => clearTimeout(timer));
  }
}

/** Reads protocol and cipher from an established TLS socket. */
export function tlsInfo(socket: TLSSocket): TlsInfo {
  const servername = (socket as unknown as { servername?: string | false }).servername;
  return {
    protocol: socket.getProtocol() ?? "TLS",
    cipher: socket.getCipher()?.name ?? "unknown",
    servername: typeof servername === "string" ? servername : undefined,
  };
}

/** Strips the IPv4-mapped IPv6 prefix so `::ffff:127.0.0.1` counts as `127.0.0.1`. */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
