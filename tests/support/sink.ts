/**
 * A small SMTP server for delivery tests (the relay's backend): it records
 * exactly what it received (envelope, MAIL parameters, unstuffed bytes), and
 * can be told to misbehave.
 *
 * - STARTTLS (`tls`) or implicit TLS (`implicitTls`), with `requireTls`;
 * - AUTH PLAIN/LOGIN with one account (`auth`), required before MAIL;
 * - extensions on or off: PIPELINING, 8BITMIME, SMTPUTF8, SIZE;
 * - replies per command through hooks (`mailReply`, `rcptReply`,
 *   `dataReply`), e.g. 4xx for a while or 5xx for one recipient;
 * - `dropMidData`: close the connection in the middle of the next N DATAs;
 * - `pause()`/`resume()`: stop listening (and cut every connection), then
 *   listen again on the same port, as a backend that goes down and comes back;
 * - counts connections (total, open, most open at once) and commands.
 *
 * Built on `node:net` (server-side STARTTLS needs `node:tls`) with
 * `upgradeServerSocket` from `src/tls`.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";
import { upgradeServerSocket } from "../../src/tls/mod.ts";

/** What the sink offers and requires. */
export interface SinkOptions {
  /** Certificate and key (PEM); enables STARTTLS (or implicit TLS). */
  tls?: { cert: string; key: string };
  /** TLS from the first byte (port 465 style). */
  implicitTls?: boolean;
  /** Refuse MAIL and AUTH before STARTTLS. */
  requireTls?: boolean;
  /** The one account; AUTH is then required before MAIL. */
  auth?: { username: string; password: string };
  /** Announce PIPELINING (default true). */
  pipelining?: boolean;
  /** Announce 8BITMIME (default true). */
  eightBitMime?: boolean;
  /** Announce SMTPUTF8 (default true). */
  smtputf8?: boolean;
  /** Announce SIZE with this limit and enforce it (default: no SIZE). */
  size?: number;
  /** Delay before the reply to the final dot, ms (default 0). */
  finalDelayMs?: number;
  /** Name in the greeting (default `sink.test`). */
  hostname?: string;
}

/** One message the sink accepted. */
export interface SinkMessage {
  from: string;
  recipients: string[];
  /** MAIL FROM parameters as sent (`BODY=8BITMIME`, `SIZE=123`, `SMTPUTF8`). */
  mailParams: string[];
  /** The message bytes, dot-unstuffed, CRLF line ends as sent. */
  data: Uint8Array;
  /** Whether the connection was encrypted. */
  tls: boolean;
  /** The authenticated user, if any. */
  user?: string;
  /** Number of the connection it came over (1-based). */
  connection: number;
}

/** A reply hook: return a full reply line (`451 4.3.0 later`) or undefined for the default. */
export type ReplyHook<T> = (arg: T) => string | undefined;

const CRLF_DOT_CRLF = Buffer.from("\r\n.\r\n");

/** A running sink. */
export class SmtpSink {
  /** Messages accepted, in order. */
  readonly messages: SinkMessage[] = [];
  /** Commands received, by verb (`RSET`, `NOOP`, `QUIT`...). */
  readonly verbs: Map<string, number> = new Map();
  /** MAIL FROM hook. */
  mailReply: ReplyHook<string> | undefined;
  /** RCPT TO hook (per recipient). */
  rcptReply: ReplyHook<string> | undefined;
  /** Final-dot hook, after the message is received; a non-2xx reply does not record it. */
  dataReply: ReplyHook<SinkMessage> | undefined;
  /** Delay before the reply to the final dot, ms (starts as `options.finalDelayMs`). */
  finalDelayMs = 0;
  /** Close the connection in the middle of the next N DATA transfers. */
  dropMidData = 0;
  /** Connections accepted so far. */
  connections = 0;
  /** Connections open now. */
  open = 0;
  /** Most connections open at once. */
  maxOpen = 0;

  #options: SinkOptions;
  #context: tls.SecureContext | undefined;
  #server: net.Server;
  #sockets = new Set<net.Socket>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #port = 0;
  #waiters: { count: number; resolve: () => void }[] = [];

  private constructor(options: SinkOptions) {
    this.#options = options;
    this.finalDelayMs = options.finalDelayMs ?? 0;
    if (options.tls) this.#context = tls.createSecureContext(options.tls);
    this.#server = this.#createServer();
  }

  /** Starts a sink on 127.0.0.1 and a free port. */
  static async start(options: SinkOptions = {}): Promise<SmtpSink> {
    const sink = new SmtpSink(options);
    await sink.#listen(0);
    return sink;
  }

  /** The port on 127.0.0.1. */
  get port(): number {
    return this.#port;
  }

  /** Messages as text (UTF-8). */
  texts(): string[] {
    return this.messages.map((m) => new TextDecoder().decode(m.data));
  }

  /** How often a verb was received. */
  count(verb: string): number {
    return this.verbs.get(verb.toUpperCase()) ?? 0;
  }

  /** Resolves once `count` messages were accepted; rejects after `timeoutMs`. */
  waitForMessages(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.messages.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          this.#timers.delete(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`sink has ${this.messages.length} messages, expected ${count}`));
      }, timeoutMs);
      this.#timers.add(timer);
      this.#waiters.push(waiter);
    });
  }

  /** Answers every MAIL FROM with `reply` for `ms` milliseconds (a backend having trouble). */
  failFor(ms: number, reply = "451 4.3.0 temporary trouble, try later"): void {
    const until = Date.now() + ms;
    this.mailReply = () => Date.now() < until ? reply : undefined;
  }

  /** Stops listening and cuts every connection (the backend is down). */
  async pause(): Promise<void> {
    for (const sock of this.#sockets) sock.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    this.#server = this.#createServer();
    await this.#listen(this.#port);
  }

  /** Stops listening, cuts every connection, clears timers. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const sock of this.#sockets) sock.destroy();
    if (this.#server.listening) {
      await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    }
    // Let destroyed sockets finish closing before the sanitizers look.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }

  #createServer(): net.Server {
    return net.createServer((sock) => this.#accept(sock));
  }

  async #listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, "127.0.0.1", () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as net.AddressInfo).port;
  }

  #track(sock: net.Socket): void {
    this.#sockets.add(sock);
    sock.on("close", () => this.#sockets.delete(sock));
  }

  #accept(sock: net.Socket): void {
    this.connections++;
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    const number = this.connections;
    this.#track(sock);
    sock.setNoDelay(true);
    sock.on("error", () => sock.destroy());
    sock.once("close", () => this.open--);
    if (this.#options.implicitTls && this.#context) {
      upgradeServerSocket(sock, this.#context, { handshakeTimeoutMs: 5000 }).then(
        (secure) => this.#serve(secure, number, true),
        () => {/* handshake failed: the client saw why */},
      );
      return;
    }
    this.#serve(sock, number, false);
  }

  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }

  #recorded(message: SinkMessage): void {
    this.messages.push(message);
    const ready = this.#waiters.filter((w) => this.messages.length >= w.count);
    this.#waiters = this.#waiters.filter((w) => this.messages.length < w.count);
    for (const w of ready) w.resolve();
  }

  /** Runs the SMTP dialogue on one (plain or TLS) socket. */
  #serve(sock: net.Socket, connection: number, secure: boolean): void {
    this.#track(sock);
    const o = this.#options;
    const host = o.hostname ?? "sink.test";
    let buffer: Buffer = Buffer.alloc(0);
    let inData = false;
    let dataStarted = false;
    let dropThis = false;
    let busy = false;
    let helo = false;
    let user: string | undefined;
    let from: string | null = null;
    let mailParams: string[] = [];
    let rcpts: string[] = [];
    let authStep: { mech: "PLAIN" | "LOGIN-USER" | "LOGIN-PASS"; user?: string } | null = null;
    const write = (line: string) => {
      if (!sock.destroyed) sock.write(line + "\r\n");
    };
    const ehloLines = () => {
      const ext: string[] = [];
      if (o.pipelining ?? true) ext.push("PIPELINING");
      if (o.eightBitMime ?? true) ext.push("8BITMIME");
      if (o.smtputf8 ?? true) ext.push("SMTPUTF8");
      if (o.size !== undefined) ext.push(`SIZE ${o.size}`);
      ext.push("ENHANCEDSTATUSCODES");
      if (this.#context && !secure && !o.implicitTls) ext.push("STARTTLS");
      if (o.auth && (secure || !o.requireTls)) ext.push("AUTH PLAIN LOGIN");
      return [host, ...ext];
    };
    const reset = () => {
      from = null;
      mailParams = [];
      rcpts = [];
    };
    const checkLogin = (name: string, password: string) => {
      if (o.auth && name === o.auth.username && password === o.auth.password) {
        user = name;
        write("235 2.7.0 Authentication successful");
      } else {
        write("535 5.7.8 Authentication credentials invalid");
      }
    };
    const b64 = (text: string) => new TextDecoder().decode(Buffer.from(text, "base64"));

    const command = (line: string): "upgrade" | void => {
      if (authStep) {
        const step = authStep;
        authStep = null;
        if (line === "*") return write("501 5.7.0 AUTH aborted");
        if (step.mech === "PLAIN") {
          const [, name, password] = b64(line).split("\0");
          return checkLogin(name ?? "", password ?? "");
        }
        if (step.mech === "LOGIN-USER") {
          authStep = { mech: "LOGIN-PASS", user: b64(line) };
          return write("334 UGFzc3dvcmQ6");
        }
        return checkLogin(step.user ?? "", b64(line));
      }
      const verb = line.split(" ", 1)[0].toUpperCase();
      this.verbs.set(verb, (this.verbs.get(verb) ?? 0) + 1);
      const arg = line.slice(verb.length).trim();
      const needSecurity = o.requireTls && !secure;
      switch (verb) {
        case "EHLO": {
          helo = true;
          reset();
          const lines = ehloLines();
          lines.forEach((l, i) => write(`250${i === lines.length - 1 ? " " : "-"}${l}`));
          return;
        }
        case "HELO":
          helo = true;
          return write(`250 ${host}`);
        case "STARTTLS":
          if (!this.#context || secure) return write("502 5.5.1 no STARTTLS here");
          write("220 2.0.0 Ready to start TLS");
          return "upgrade";
        case "AUTH": {
          if (!o.auth) return write("502 5.5.1 no AUTH here");
          if (needSecurity) return write("530 5.7.0 Must issue a STARTTLS command first");
          const [mech, initial] = arg.split(" ");
          if (mech.toUpperCase() === "PLAIN") {
            if (initial) {
              const [, name, password] = b64(initial).split("\0");
              return checkLogin(name ?? "", password ?? "");
            }
            authStep = { mech: "PLAIN" };
            return write("334 ");
          }
          if (mech.toUpperCase() === "LOGIN") {
            authStep = { mech: "LOGIN-USER" };
            return write("334 VXNlcm5hbWU6");
          }
          return write("504 5.5.4 unrecognized mechanism");
        }
        case "MAIL": {
          if (!helo) return write("503 5.5.1 EHLO first");
          if (needSecurity) return write("530 5.7.0 Must issue a STARTTLS command first");
          if (o.auth && !user) return write("530 5.7.0 Authentication required");
          const m = /^FROM:\s*<([^>]*)>\s*(.*)$/i.exec(arg);
          if (!m) return write("501 5.5.4 syntax: MAIL FROM:<address>");
          const params = m[2] ? m[2].split(/\s+/) : [];
          const size = params.find((p) => /^SIZE=/i.test(p));
          if (o.size && size && Number(size.slice(5)) > o.size) {
            return write("552 5.3.4 message too big");
          }
          const hooked = this.mailReply?.(m[1]);
          if (hooked) return write(hooked);
          from = m[1];
          mailParams = params;
          rcpts = [];
          return write("250 2.1.0 Ok");
        }
        case "RCPT": {
          if (from === null) return write("503 5.5.1 MAIL first");
          const m = /^TO:\s*<([^>]*)>/i.exec(arg);
          if (!m) return write("501 5.5.4 syntax: RCPT TO:<address>");
          const hooked = this.rcptReply?.(m[1]);
          if (hooked) return write(hooked);
          rcpts.push(m[1]);
          return write("250 2.1.5 Ok");
        }
        case "DATA":
          if (from === null || rcpts.length === 0) return write("554 5.5.1 no valid recipients");
          inData = true;
          dataStarted = false;
          if (this.dropMidData > 0) {
            this.dropMidData--;
            dropThis = true;
          }
          return write("354 End data with <CR><LF>.<CR><LF>");
        case "RSET":
          reset();
          return write("250 2.0.0 Ok");
        case "NOOP":
          return write("250 2.0.0 Ok");
        case "QUIT":
          write("221 2.0.0 Bye");
          sock.end();
          return;
        default:
          return write("502 5.5.2 command not recognized");
      }
    };

    const endOfData = async (raw: Buffer) => {
      // Undo dot-stuffing: a leading ".." on any line becomes ".".
      const text = raw.toString("latin1").replace(/(^|\r\n)\.\./g, "$1.");
      const message: SinkMessage = {
        from: from ?? "",
        recipients: [...rcpts],
        mailParams: [...mailParams],
        data: new Uint8Array(Buffer.from(text, "latin1")),
        tls: secure,
        ...(user ? { user } : {}),
        connection,
      };
      if (this.finalDelayMs > 0) await this.#delay(this.finalDelayMs);
      const hooked = this.dataReply?.(message);
      reset();
      if (hooked) return write(hooked);
      this.#recorded(message);
      write("250 2.0.0 Ok: queued");
    };

    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        while (!sock.destroyed) {
          if (inData) {
            if (dropThis && buffer.length > 0) {
              dropThis = false;
              sock.destroy();
              return;
            }
            // The CRLF before the dot may be the DATA line's own (an empty message).
            let end = -1;
            let bodyEnd = 0;
            if (!dataStarted && buffer.subarray(0, 3).toString() === ".\r\n") {
              end = 0;
              bodyEnd = 0;
            } else {
              const at = buffer.indexOf(CRLF_DOT_CRLF);
              if (at !== -1) {
                end = at;
                bodyEnd = at + 2;
              }
            }
            if (end === -1) {
              if (buffer.length > 0) dataStarted = true;
              return;
            }
            const raw = buffer.subarray(0, bodyEnd);
            buffer = buffer.subarray(end === 0 && bodyEnd === 0 ? 3 : end + 5);
            inData = false;
            await endOfData(Buffer.from(raw));
            continue;
          }
          const lf = buffer.indexOf(10);
          if (lf === -1) return;
          const line = buffer.subarray(0, lf).toString("utf8").replace(/\r$/, "");
          buffer = buffer.subarray(lf + 1);
          const result = await command(line);
          if (result === "upgrade") {
            // Anything pipelined after STARTTLS is discarded (RFC 3207 section 5).
            buffer = Buffer.alloc(0);
            sock.removeAllListeners("data");
            try {
              const upgraded = await upgradeServerSocket(sock, this.#context!, {
                handshakeTimeoutMs: 5000,
              });
              this.#serve(upgraded, connection, true);
            } catch {
              // The client refused our certificate; the socket is gone.
            }
            return;
          }
        }
      } finally {
        busy = false;
      }
    };

    sock.on("data", (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      pump().catch(() => sock.destroy());
    });
    sock.on("error", () => sock.destroy());
    if (secure) sock.resume();
    if (!secure || o.implicitTls) write(`220 ${host} ESMTP sink`);
  }
}
