/**
 * Test helpers for `src/tls/`: a `node:net` echo server that upgrades every
 * connection with {@linkcode upgradeServerSocket}, and a Deno TLS client.
 *
 * @module
 */
import * as net from "node:net";
import type * as tls from "node:tls";
import { upgradeServerSocket } from "./upgrade.ts";

/** What the server saw for one connection. */
export type Outcome =
  | { ok: true; protocol: string | null }
  | { ok: false; error: Error };

/** A running echo server. */
export interface EchoServer {
  /** The port on 127.0.0.1. */
  port: number;
  /** Resolves with the outcome of the next connection's handshake (in accept order). */
  nextOutcome(): Promise<Outcome>;
  /** Close the listener and every connection. */
  close(): Promise<void>;
}

/** Options of {@linkcode startEchoServer}. */
export interface EchoServerOptions {
  /** The context for each new connection (called per accept, as the listeners do). */
  context: () => tls.SecureContext;
  /** Handshake timeout; default 5000 ms. */
  handshakeTimeoutMs?: number;
}

/**
 * Start a server on 127.0.0.1:0 that upgrades each connection and echoes
 * the bytes it receives.
 */
export async function startEchoServer(options: EchoServerOptions): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  const outcomes: Outcome[] = [];
  const waiters: ((outcome: Outcome) => void)[] = [];
  const record = (outcome: Outcome) => {
    const waiter = waiters.shift();
    if (waiter) waiter(outcome);
    else outcomes.push(outcome);
  };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => sockets.delete(sock));
    upgradeServerSocket(sock, options.context(), {
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    }).then((secure) => {
      sockets.add(secure);
      secure.on("error", () => secure.destroy());
      secure.on("close", () => sockets.delete(secure));
      secure.on("data", (chunk) => secure.write(chunk));
      secure.on("end", () => secure.end());
      secure.resume();
      record({ ok: true, protocol: secure.getProtocol() });
    }, (error: Error) => record({ ok: false, error }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    nextOutcome: () =>
      outcomes.length > 0
        ? Promise.resolve(outcomes.shift()!)
        : new Promise((resolve) => waiters.push(resolve)),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
  };
}

/** Options of {@linkcode echoOverTls}. */
export interface EchoOverTlsOptions {
  /** Server port on 127.0.0.1. */
  port: number;
  /** The name to verify the certificate against. */
  hostname: string;
  /** PEM CA certificates the client trusts. */
  caCerts: string[];
  /** Bytes to send; default "hello\n". */
  message?: string;
}

/**
 * Connect with `Deno.connect` + `Deno.startTls` (as the delivery side does),
 * send a message and return what the server echoed.
 *
 * @throws When the handshake or certificate verification fails.
 */
export async function echoOverTls(options: EchoOverTlsOptions): Promise<string> {
  const message = options.message ?? "hello\n";
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, { hostname: options.hostname, caCerts: options.caCerts });
  try {
    await conn.handshake();
    await conn.write(new TextEncoder().encode(message));
    const buffer = new Uint8Array(1024);
    let received = "";
    while (received.length < message.length) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return received;
  } finally {
    conn.close();
  }
}

/** Run `openssl` with stdin closed; returns exit code and combined output. */
export async function openssl(args: string[]): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command("openssl", { args, stdin: "null" }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}
