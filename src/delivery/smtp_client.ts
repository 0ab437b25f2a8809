/**
 * Our SMTP client (RFC 5321), used to relay to backend smart hosts, by tests
 * and by the benchmark.
 *
 * Transport: `Deno.connect` + `setNoDelay(true)` + `Deno.startTls`, for
 * STARTTLS (RFC 3207) and implicit TLS (RFC 8314) alike — `Deno.connectTls`
 * cannot turn Nagle off, and with Nagle every small write after the
 * handshake waits ~40 ms for a delayed ACK. Reads and writes go straight to
 * the connection through reusable buffers.
 *
 * Certificate verification in Deno: the chain is always verified against
 * Deno's root store plus `caCerts`. `verify: false` only skips the host name
 * check (`unsafelyDisableHostnameVerification`); Deno has no per-connection
 * way to skip chain verification. To talk to a backend with a private or
 * self-signed certificate, pass its CA (or the self-signed certificate
 * itself, if it is not marked CA:TRUE) in `caCerts`, or run the process with
 * `--unsafely-ignore-certificate-errors=<servername>` (process-wide).
 *
 * Errors: a server's "no" is an {@linkcode SmtpReplyError} and leaves the
 * connection usable; a {@linkcode SmtpProtocolError},
 * {@linkcode SmtpTimeoutError} or {@linkcode SmtpConnectionError} closes it.
 * Errors never carry AUTH data.
 *
 * @example Sending one message
 * ```ts ignore
 * import { SmtpClient } from "./smtp_client.ts";
 *
 * const client = await SmtpClient.connect({ host: "smtp.example.com", port: 465, security: "implicit" });
 * try {
 *   await client.auth({ username: "app@example.com", password: "secret" });
 *   const result = await client.send({
 *     from: "app@example.com",
 *     to: ["user@example.net"],
 *     data: new TextEncoder().encode("Subject: hi\r\n\r\nhello\r\n"),
 *   });
 *   console.log(result.outcome); // "sent"
 * } finally {
 *   await client.quit();
 * }
 * ```
 *
 * @module
 */
import { DotStuffer } from "./dot_stuff.ts";
import {
  DEFAULT_MAX_REPLY_BYTES,
  describe,
  formatReply,
  IoDeadline,
  isPositive,
  raceTimeout,
  ReplyReader,
  type ServerReply,
  SmtpConnectionError,
  SmtpError,
  SmtpProtocolError,
  SmtpReplyError,
  SmtpTimeoutError,
} from "./reply_reader.ts";

export {
  formatReply,
  isPermanent,
  isPositive,
  isTransient,
  type ServerReply,
  SmtpConnectionError,
  SmtpError,
  SmtpProtocolError,
  SmtpReplyError,
  SmtpTimeoutError,
} from "./reply_reader.ts";

/** How the connection is secured. */
export type SmtpSecurity = "implicit" | "starttls" | "none";

/** Time limits in milliseconds; 0 or Infinity disables one. */
export interface SmtpTimeouts {
  /** TCP connect plus TLS handshake (default 30 s). */
  connect: number;
  /** Waiting for the reply to a command, and for the greeting (default 5 min, RFC 5321 4.5.3.2). */
  command: number;
  /** Writing each block of message data, and the reply after the final dot (default 10 min). */
  data: number;
}

/** Options for {@linkcode SmtpClient.connect}. */
export interface SmtpClientOptions {
  /** Host name or IP address to connect to. */
  host: string;
  /** TCP port. */
  port: number;
  /** `implicit` TLS from the first byte (port 465), `starttls` (required, never skipped), or `none`. */
  security: SmtpSecurity;
  /** The name the certificate must carry, also sent as SNI (default: `host`). */
  servername?: string;
  /** Extra trusted CA certificates (PEM), in addition to Deno's root store. */
  caCerts?: string[];
  /**
   * Check the certificate's host name (default true). `false` skips only the
   * name check; the chain is still verified (see the module documentation).
   */
  verify?: boolean;
  /** The name sent with EHLO/HELO (default `localhost`; pass the relay's host name). */
  ehloName?: string;
  /** Time limits; missing ones take the defaults. */
  timeouts?: Partial<SmtpTimeouts>;
  /** Cap on one reply's total size in bytes (default 64 KiB). */
  maxReplyBytes?: number;
  /**
   * Send EHLO after the greeting (default true). With `starttls` EHLO is
   * always sent, before and after the TLS upgrade.
   */
  autoEhlo?: boolean;
  /** The clock for `lastActivity` (default `Date.now`). */
  now?: () => number;
}

/** What is known about the TLS session. */
export interface SmtpTlsInfo {
  /** The name the certificate was checked against (and SNI). */
  servername: string;
  /** Whether the host name was checked (`verify`); the chain always is. */
  hostnameVerified: boolean;
  /** The ALPN protocol agreed, if any. */
  alpnProtocol: string | null;
  /** `implicit` or `starttls`. */
  via: "implicit" | "starttls";
}

/** Credentials for {@linkcode SmtpClient.auth}. */
export interface SmtpAuthOptions {
  /** The authentication identity (usually an email address). */
  username: string;
  /** The password; sent base64-encoded only, never logged or put in errors. */
  password: string;
  /** The mechanism; by default PLAIN if offered, else LOGIN. */
  mechanism?: "PLAIN" | "LOGIN";
}

/** MAIL FROM parameters to add when the server supports them. */
export interface SmtpSendParams {
  /**
   * `SIZE=` (RFC 1870) when the server offers SIZE: `true` declares the
   * length of a `Uint8Array` body, a number declares that size.
   */
  size?: boolean | number;
  /** `BODY=8BITMIME` (RFC 6152); fails before sending if the server lacks 8BITMIME. */
  body8bit?: boolean;
  /**
   * `SMTPUTF8` (RFC 6531); fails before sending if the server lacks it.
   * Set automatically when an address is not ASCII and the server offers it.
   */
  smtputf8?: boolean;
}

/** One message transaction for {@linkcode SmtpClient.send}. */
export interface SmtpSendOptions {
  /** Envelope sender; `""` is the null sender `<>`. */
  from: string;
  /** Envelope recipients (at least one). */
  to: string[];
  /** The message (headers and body), any line ends; streamed and dot-stuffed. */
  data: Uint8Array | AsyncIterable<Uint8Array>;
  /** MAIL FROM parameters. */
  params?: SmtpSendParams;
  /**
   * Send RSET first, to start from a clean state on a reused connection
   * (with PIPELINING it goes out in the same write as MAIL, RFC 2920 3.1).
   * A refused RSET closes the connection and throws.
   */
  rset?: boolean;
}

/** How a transaction ended. */
export type SmtpSendOutcome =
  /** The final reply after the data was 2xx: accepted for every accepted recipient. */
  | "sent"
  /** MAIL FROM was refused (then RSET). */
  | "mail-rejected"
  /** Every RCPT TO was refused; no data was sent (then RSET). */
  | "recipients-rejected"
  /** DATA was refused (then RSET). */
  | "data-rejected"
  /** The data was sent and the final reply was 4xx/5xx. */
  | "message-rejected";

/** The reply to one RCPT TO. */
export interface SmtpRecipientResult {
  /** The recipient as given to `send`. */
  address: string;
  /** The server's reply; absent when the command was not sent (MAIL was refused first). */
  reply?: ServerReply;
  /** True when the reply was 2xx. */
  accepted: boolean;
}

/** Everything the server said during one transaction. */
export interface SmtpSendResult {
  /** How the transaction ended. */
  outcome: SmtpSendOutcome;
  /** The reply to MAIL FROM. */
  mail: ServerReply;
  /** One entry per recipient, in order. */
  recipients: SmtpRecipientResult[];
  /** The reply to the DATA command (354 when data followed); absent if DATA was not sent. */
  data?: ServerReply;
  /** The reply after the final dot; absent when no data was sent. */
  final?: ServerReply;
  /** Whether MAIL, RCPT and DATA went out in one write (RFC 2920). */
  pipelined: boolean;
}

const DEFAULT_TIMEOUTS: SmtpTimeouts = { connect: 30_000, command: 300_000, data: 600_000 };
/** Input slice per data write: big enough to fill a TCP window, small enough to stay cheap. */
const DATA_CHUNK = 64 * 1024;
const encoder = new TextEncoder();

/** An SMTP client connection. Operations must not overlap. */
export class SmtpClient {
  #conn: Deno.TcpConn | Deno.TlsConn;
  /** Every read's and write's deadline, on one lazy timer for the whole connection. */
  #deadline = new IoDeadline();
  #reader: ReplyReader;
  #options: SmtpClientOptions;
  #timeouts: SmtpTimeouts;
  #now: () => number;
  #extensions = new Map<string, string[]>();
  #greeting: ServerReply | undefined;
  #tls: SmtpTlsInfo | undefined;
  #writeBuf = new Uint8Array(1024);
  #stuffer: DotStuffer | undefined;
  #busy = false;
  #closed = false;
  #lastActivity: number;

  private constructor(
    conn: Deno.TcpConn | Deno.TlsConn,
    options: SmtpClientOptions,
    tls: SmtpTlsInfo | undefined,
  ) {
    this.#conn = conn;
    this.#options = options;
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#now = options.now ?? Date.now;
    this.#tls = tls;
    this.#reader = new ReplyReader(conn, {
      maxReplyBytes: options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
      deadline: this.#deadline,
    });
    this.#lastActivity = this.#now();
  }

  /**
   * Connects, reads the greeting, and (by default) says EHLO; with
   * `security: "starttls"` also upgrades to TLS and says EHLO again.
   *
   * @throws {SmtpReplyError} the greeting was not 2xx, or EHLO/STARTTLS was refused
   * @throws {SmtpProtocolError} STARTTLS required but not offered, or a malformed reply
   * @throws {SmtpConnectionError} TCP or TLS failed
   * @throws {SmtpTimeoutError} connect, handshake or greeting took too long
   */
  static async connect(options: SmtpClientOptions): Promise<SmtpClient> {
    const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    const tcp = await openTcp(options.host, options.port, timeouts.connect);
    let conn: Deno.TcpConn | Deno.TlsConn = tcp;
    let tls: SmtpTlsInfo | undefined;
    if (options.security === "implicit") {
      [conn, tls] = await upgrade(tcp, options, timeouts.connect, "implicit");
    }
    const client = new SmtpClient(conn, options, tls);
    try {
      await client.#run(async () => {
        const greeting = await client.#readReply(timeouts.command);
        client.#greeting = greeting;
        if (!isPositive(greeting)) throw new SmtpReplyError("greeting", greeting);
      });
      if (options.security === "starttls") {
        await client.ehlo();
        await client.#run(() => client.#startTls());
        await client.ehlo();
      } else if (options.autoEhlo ?? true) {
        await client.ehlo();
      }
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** The server's greeting. */
  get greeting(): ServerReply | undefined {
    return this.#greeting;
  }

  /**
   * The extensions from the last EHLO, keyword (upper case) → parameters:
   * `SIZE` → `["10240000"]`, `AUTH` → `["PLAIN", "LOGIN"]`, `PIPELINING` → `[]`.
   * Empty after HELO and right after STARTTLS.
   */
  get extensions(): ReadonlyMap<string, readonly string[]> {
    return this.#extensions;
  }

  /** The SASL mechanisms offered (upper case). */
  get authMechanisms(): readonly string[] {
    return this.#extensions.get("AUTH") ?? [];
  }

  /** The SIZE limit the server announced, if any (0 means no fixed limit). */
  get maxSize(): number | undefined {
    const size = this.#extensions.get("SIZE");
    if (!size) return undefined;
    const n = Number(size[0] ?? "0");
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  }

  /** Whether the connection is encrypted. */
  get isTls(): boolean {
    return this.#tls !== undefined;
  }

  /** The TLS session, when encrypted. */
  get tlsInfo(): SmtpTlsInfo | undefined {
    return this.#tls;
  }

  /** When the client last wrote or received a complete reply (the `now` clock), for idle checks. */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** Whether the connection has been closed (by `close`, `quit` or an error). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Says EHLO and records the extensions; falls back to HELO when EHLO gets
   * a 5xx reply (then there are no extensions).
   *
   * @param name the client's name (default: the `ehloName` option)
   * @returns the EHLO (or HELO) reply
   * @throws {SmtpReplyError} EHLO got a 4xx, or HELO was refused too
   */
  async ehlo(name: string = this.#options.ehloName ?? "localhost"): Promise<ServerReply> {
    checkArgument(name, "EHLO name");
    return await this.#run(async () => {
      this.#extensions = new Map();
      const reply = await this.#command(`EHLO ${name}`);
      if (isPositive(reply)) {
        this.#extensions = parseExtensions(reply.lines.slice(1));
        return reply;
      }
      if (reply.code < 500) throw new SmtpReplyError("EHLO", reply);
      const helo = await this.#command(`HELO ${name}`);
      if (!isPositive(helo)) throw new SmtpReplyError("HELO", helo);
      return helo;
    });
  }

  /**
   * Authenticates with a password: PLAIN (with an initial response) or
   * LOGIN (one step per prompt), chosen from what the server offers unless
   * `mechanism` says which.
   *
   * @returns the 235 reply
   * @throws {SmtpReplyError} the credentials were refused (535 is permanent, 454 transient)
   * @throws {SmtpProtocolError} no usable mechanism, or the exchange went off script
   */
  auth(options: SmtpAuthOptions): Promise<ServerReply> {
    const offered = this.authMechanisms;
    const mechanism = options.mechanism ??
      (offered.includes("PLAIN") ? "PLAIN" : offered.includes("LOGIN") ? "LOGIN" : undefined);
    if (mechanism === undefined || !offered.includes(mechanism)) {
      const what = offered.length === 0 ? "no AUTH" : `AUTH ${offered.join(" ")}`;
      return Promise.reject(
        new SmtpProtocolError(`server offers ${what}; cannot use ${mechanism ?? "PLAIN or LOGIN"}`),
      );
    }
    if (mechanism === "PLAIN" && (options.username + options.password).includes("\0")) {
      return Promise.reject(new TypeError("PLAIN credentials must not contain NUL"));
    }
    return this.#run(async () => {
      const verb = `AUTH ${mechanism}`;
      if (mechanism === "PLAIN") {
        const response = base64(`\0${options.username}\0${options.password}`);
        let reply = await this.#command(`AUTH PLAIN ${response}`);
        // A server that ignores initial responses sends an empty 334 challenge.
        if (reply.code === 334) reply = await this.#command(response);
        return this.#authDone(verb, reply);
      }
      let reply = await this.#command("AUTH LOGIN");
      for (const answer of [options.username, options.password]) {
        if (reply.code !== 334) return this.#authDone(verb, reply);
        reply = await this.#command(base64(answer));
      }
      return this.#authDone(verb, reply);
    });
  }

  async #authDone(verb: string, reply: ServerReply): Promise<ServerReply> {
    if (reply.code === 235) return reply;
    if (reply.code === 334) {
      // More challenges than the mechanism has steps: cancel (RFC 4954 4).
      await this.#command("*");
      throw new SmtpProtocolError(`${verb}: unexpected extra challenge`);
    }
    throw new SmtpReplyError(verb, reply);
  }

  /**
   * Sends `AUTH <mechanism> [initialResponse]` and returns the reply without
   * judging it, for driving other mechanisms (XOAUTH2, OAUTHBEARER) or broken
   * exchanges with {@linkcode sendLine} and {@linkcode readReply}.
   *
   * @param mechanism the SASL mechanism name
   * @param initialResponse already base64-encoded; `""` is sent as `=` (RFC 4954)
   */
  async authRaw(mechanism: string, initialResponse?: string): Promise<ServerReply> {
    if (!/^[A-Za-z0-9_-]{1,20}$/.test(mechanism)) {
      throw new TypeError("invalid SASL mechanism name");
    }
    let line = `AUTH ${mechanism}`;
    if (initialResponse !== undefined) {
      checkArgument(initialResponse, "initial response", true);
      line += ` ${initialResponse === "" ? "=" : initialResponse}`;
    }
    return await this.#run(() => this.#command(line));
  }

  /** Writes one line (CRLF is added; the line must not contain CR or LF). */
  async sendLine(line: string): Promise<void> {
    checkArgument(line, "line", true);
    return await this.#run(() => this.#writeText(`${line}\r\n`, this.#timeouts.command));
  }

  /** Reads the next reply, whatever its code. */
  readReply(): Promise<ServerReply> {
    return this.#run(() => this.#readReply(this.#timeouts.command));
  }

  /**
   * Runs one mail transaction. With PIPELINING, MAIL, every RCPT and DATA go
   * out in one write and the replies are read after (RFC 2920); without it,
   * one command at a time. The data is dot-stuffed and streamed. When the
   * transaction cannot proceed the client sends RSET, so the connection can
   * be reused.
   *
   * @returns every reply; `outcome` says how it ended
   * @throws {SmtpReplyError} only when the recovering RSET is refused
   * @throws {SmtpProtocolError} a parameter the server does not support, or a bad address
   */
  send(options: SmtpSendOptions): Promise<SmtpSendResult> {
    let commands: string[];
    try {
      commands = this.#envelope(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#run(async () => {
      const pipelined = this.#extensions.has("PIPELINING");
      const to = options.to;
      let mail: ServerReply;
      const recipients: SmtpRecipientResult[] = to.map((address) => ({ address, accepted: false }));
      let data: ServerReply | undefined;
      if (pipelined) {
        const batch = (options.rset ? ["RSET", ...commands] : commands).map((c) => `${c}\r\n`);
        await this.#writeText(batch.join(""), this.#timeouts.command);
        if (options.rset) {
          const reset = await this.#readReply(this.#timeouts.command);
          // The rest of the batch may already be executing: give up on this connection.
          if (!isPositive(reset)) {
            throw new SmtpProtocolError(`RSET refused: ${formatReply(reset)}`);
          }
        }
        mail = await this.#readReply(this.#timeouts.command);
        for (const r of recipients) {
          r.reply = await this.#readReply(this.#timeouts.command);
          r.accepted = isPositive(r.reply);
        }
        data = await this.#readReply(this.#timeouts.command);
      } else {
        if (options.rset) {
          const reset = await this.#command("RSET");
          if (!isPositive(reset)) {
            throw new SmtpProtocolError(`RSET refused: ${formatReply(reset)}`);
          }
        }
        mail = await this.#command(commands[0]);
        if (!isPositive(mail)) {
          await this.#rset();
          return { outcome: "mail-rejected", mail, recipients, pipelined };
        }
        for (const [i, r] of recipients.entries()) {
          r.reply = await this.#command(commands[i + 1]);
          r.accepted = isPositive(r.reply);
        }
        if (!recipients.some((r) => r.accepted)) {
          await this.#rset();
          return { outcome: "recipients-rejected", mail, recipients, pipelined };
        }
        data = await this.#command(commands[commands.length - 1]);
      }
      const mailOk = isPositive(mail);
      const anyRecipient = recipients.some((r) => r.accepted);
      if (data.code === 354 && !(mailOk && anyRecipient)) {
        // RFC 2920 3.1: a server that accepted DATA anyway gets an empty message, then RSET.
        await this.#writeText(".\r\n", this.#timeouts.data);
        await this.#readReply(this.#timeouts.data);
      }
      if (!mailOk || !anyRecipient || data.code !== 354) {
        await this.#rset();
        const outcome = !mailOk
          ? "mail-rejected"
          : !anyRecipient
          ? "recipients-rejected"
          : "data-rejected";
        return { outcome, mail, recipients, data, pipelined };
      }
      await this.#writeData(options.data);
      const final = await this.#readReply(this.#timeouts.data);
      const outcome = isPositive(final) ? "sent" : "message-rejected";
      return { outcome, mail, recipients, data, final, pipelined };
    });
  }

  /** Builds the MAIL, RCPT... and DATA lines (no CRLF); validates before anything is sent. */
  #envelope(options: SmtpSendOptions): string[] {
    if (options.to.length === 0) throw new TypeError("send needs at least one recipient");
    const params = options.params ?? {};
    const addresses = [options.from, ...options.to];
    for (const address of addresses) checkAddress(address);
    // deno-lint-ignore no-control-regex
    const needsUtf8 = addresses.some((a) => /[^\x00-\x7f]/.test(a));
    const ext = this.#extensions;
    const mailParams: string[] = [];
    if (params.size !== undefined && params.size !== false && ext.has("SIZE")) {
      const size = typeof params.size === "number"
        ? params.size
        : options.data instanceof Uint8Array
        ? options.data.length
        : undefined;
      if (size !== undefined) mailParams.push(`SIZE=${Math.max(0, Math.floor(size))}`);
    }
    if (params.body8bit) {
      if (!ext.has("8BITMIME")) throw new SmtpProtocolError("server does not offer 8BITMIME");
      mailParams.push("BODY=8BITMIME");
    }
    if (params.smtputf8 || needsUtf8) {
      if (!ext.has("SMTPUTF8")) {
        throw new SmtpProtocolError(
          needsUtf8
            ? "non-ASCII address but the server does not offer SMTPUTF8"
            : "server does not offer SMTPUTF8",
        );
      }
      mailParams.push("SMTPUTF8");
    }
    const mail = `MAIL FROM:<${options.from}>${mailParams.map((p) => ` ${p}`).join("")}`;
    return [mail, ...options.to.map((to) => `RCPT TO:<${to}>`), "DATA"];
  }

  async #writeData(data: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    // One encoder per client: its buffer grows to the largest chunk and is reused.
    const stuffer = this.#stuffer ??= new DotStuffer(8 * 1024);
    stuffer.reset();
    const limit = this.#timeouts.data;
    if (data instanceof Uint8Array) {
      // The last slice carries the terminator: a small message is one write.
      let at = 0;
      do {
        const end = Math.min(at + DATA_CHUNK, data.length);
        await this.#write(stuffer.push(data.subarray(at, end), end === data.length), limit);
        at = end;
      } while (at < data.length);
      return;
    }
    for await (const chunk of data) {
      for (let at = 0; at < chunk.length; at += DATA_CHUNK) {
        const out = stuffer.push(chunk.subarray(at, Math.min(at + DATA_CHUNK, chunk.length)));
        if (out.length > 0) await this.#write(out, limit);
      }
    }
    await this.#write(stuffer.end(), limit);
  }

  /** Sends RSET; expects 250. */
  rset(): Promise<ServerReply> {
    return this.#run(() => this.#rset());
  }

  async #rset(): Promise<ServerReply> {
    const reply = await this.#command("RSET");
    if (!isPositive(reply)) throw new SmtpReplyError("RSET", reply);
    return reply;
  }

  /** Sends NOOP; expects 250 (a cheap liveness check for pooled connections). */
  noop(): Promise<ServerReply> {
    return this.#run(async () => {
      const reply = await this.#command("NOOP");
      if (!isPositive(reply)) throw new SmtpReplyError("NOOP", reply);
      return reply;
    });
  }

  /**
   * Sends QUIT, waits for the reply (221) and closes. Never throws: a server
   * that already closed, or answers oddly, still ends with a closed client.
   *
   * @returns the reply, or undefined when none came
   */
  async quit(): Promise<ServerReply | undefined> {
    if (this.#closed) return undefined;
    try {
      return await this.#run(() => this.#command("QUIT"));
    } catch {
      return undefined;
    } finally {
      this.close();
    }
  }

  /** Closes the connection at once. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deadline.dispose();
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime (e.g. consumed by a failed startTls).
    }
  }

  /** Releases the connection when used with `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Runs one operation: refuses overlap and use after close, and closes the
   * connection after any error other than a server's "no".
   */
  async #run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new SmtpConnectionError("connection is closed");
    if (this.#busy) throw new Error("SmtpClient: another operation is in progress");
    this.#busy = true;
    try {
      return await operation();
    } catch (error) {
      if (!(error instanceof SmtpReplyError)) this.close();
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  async #command(line: string): Promise<ServerReply> {
    await this.#writeText(`${line}\r\n`, this.#timeouts.command);
    return await this.#readReply(this.#timeouts.command);
  }

  async #readReply(timeoutMs: number): Promise<ServerReply> {
    const reply = await this.#reader.read(timeoutMs);
    this.#lastActivity = this.#now();
    return reply;
  }

  #writeText(text: string, timeoutMs: number): Promise<void> {
    if (this.#writeBuf.length < text.length * 3) {
      this.#writeBuf = new Uint8Array(Math.max(text.length * 3, this.#writeBuf.length * 2));
    }
    const { written } = encoder.encodeInto(text, this.#writeBuf);
    return this.#write(this.#writeBuf.subarray(0, written), timeoutMs);
  }

  async #write(bytes: Uint8Array, timeoutMs: number): Promise<void> {
    const deadline = this.#deadline;
    deadline.start("write", timeoutMs);
    let off = 0;
    try {
      while (off < bytes.length) off += await deadline.race(this.#conn.write(bytes.subarray(off)));
    } catch (error) {
      if (error instanceof SmtpError) throw error;
      throw new SmtpConnectionError(`write failed: ${describe(error)}`, { cause: error });
    } finally {
      deadline.finish();
    }
    this.#lastActivity = this.#now();
  }

  async #startTls(): Promise<void> {
    if (!this.#extensions.has("STARTTLS")) {
      throw new SmtpProtocolError("server does not offer STARTTLS; refusing to continue in clear");
    }
    const reply = await this.#command("STARTTLS");
    if (reply.code !== 220) throw new SmtpReplyError("STARTTLS", reply);
    if (this.#reader.buffered > 0) {
      // Bytes after the 220 were sent in clear but would be read as if inside TLS.
      throw new SmtpProtocolError("server sent data after the STARTTLS reply");
    }
    const [tls, info] = await upgrade(
      this.#conn as Deno.TcpConn,
      this.#options,
      this.#timeouts.connect,
      "starttls",
    );
    this.#conn = tls;
    this.#tls = info;
    this.#reader.setSource(tls);
    this.#extensions = new Map();
  }
}

/** Connects over TCP with no-delay on, within `timeoutMs`. */
async function openTcp(host: string, port: number, timeoutMs: number): Promise<Deno.TcpConn> {
  const abort = new AbortController();
  const pending = Deno.connect({ hostname: host, port, signal: abort.signal });
  let conn: Deno.TcpConn;
  try {
    conn = timeoutMs > 0 && timeoutMs < Infinity
      ? await raceTimeout(pending, timeoutMs, "connect")
      : await pending;
  } catch (error) {
    if (error instanceof SmtpTimeoutError) {
      abort.abort();
      pending.then((late) => late.close(), () => {});
      throw error;
    }
    throw new SmtpConnectionError(`connect to ${host}:${port} failed: ${describe(error)}`, {
      cause: error,
    });
  }
  conn.setNoDelay(true);
  return conn;
}

/** Runs the TLS client handshake on `tcp` (which is consumed); closes on failure. */
async function upgrade(
  tcp: Deno.TcpConn,
  options: SmtpClientOptions,
  timeoutMs: number,
  via: "implicit" | "starttls",
): Promise<[Deno.TlsConn, SmtpTlsInfo]> {
  const servername = options.servername ?? options.host;
  const hostnameVerified = options.verify ?? true;
  let tls: Deno.TlsConn | undefined;
  try {
    tls = await Deno.startTls(tcp, {
      hostname: servername,
      caCerts: options.caCerts,
      unsafelyDisableHostnameVerification: !hostnameVerified,
    });
    const handshake = tls.handshake();
    const info = timeoutMs > 0 && timeoutMs < Infinity
      ? await raceTimeout(handshake, timeoutMs, "TLS handshake")
      : await handshake;
    return [tls, { servername, hostnameVerified, alpnProtocol: info.alpnProtocol, via }];
  } catch (error) {
    try {
      (tls ?? tcp).close();
    } catch {
      // Consumed or already closed.
    }
    if (error instanceof SmtpError) throw error;
    throw new SmtpConnectionError(`TLS with ${servername} failed: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** Parses EHLO keyword lines (RFC 5321 4.1.1.1), merging the old `AUTH=` form into AUTH. */
function parseExtensions(lines: string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of lines) {
    const [word, ...params] = line.trim().split(/\s+/);
    if (!word) continue;
    let keyword = word.toUpperCase();
    if (keyword.startsWith("AUTH=")) {
      params.unshift(keyword.slice(5));
      keyword = "AUTH";
    }
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(keyword)) continue;
    const values = keyword === "AUTH" ? params.map((p) => p.toUpperCase()) : params;
    const known = map.get(keyword);
    if (known) {
      for (const v of values) if (!known.includes(v)) known.push(v);
    } else {
      map.set(keyword, values.filter((v) => v !== ""));
    }
  }
  return map;
}

/** Refuses envelope addresses that could break out of `<...>` or the command line. */
function checkAddress(address: string): void {
  // deno-lint-ignore no-control-regex
  if (address.length > 512 || /[\x00-\x20\x7f<>]/.test(address)) {
    throw new SmtpProtocolError(`invalid envelope address ${JSON.stringify(address.slice(0, 80))}`);
  }
}

/** Refuses text that would end the command line early. */
function checkArgument(text: string, what: string, allowSpaces = false): void {
  const bad = allowSpaces ? /[\r\n\0]/ : /[\s\0]/;
  if (bad.test(text) || text.length > 4096) throw new TypeError(`invalid ${what}`);
}

function base64(text: string): string {
  return encoder.encode(text).toBase64();
}
