/**
 * Server-side TLS over an accepted `node:net` socket: the one step both the
 * implicit-TLS listener (at accept) and STARTTLS (mid-session) share.
 *
 * @module
 */
import type * as net from "node:net";
import * as tls from "node:tls";

/** Why a server-side handshake did not complete. */
export type TlsHandshakeFailure = "timeout" | "closed" | "error";

/** A TLS handshake that did not complete; the socket has been destroyed. */
export class TlsHandshakeError extends Error {
  /** What went wrong: the client was too slow, went away, or spoke bad TLS. */
  readonly reason: TlsHandshakeFailure;

  /**
   * @param reason What went wrong.
   * @param message Human-readable detail (never contains secrets).
   * @param options The underlying error, if any.
   */
  constructor(reason: TlsHandshakeFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsHandshakeError";
    this.reason = reason;
  }
}

/** Options of {@linkcode upgradeServerSocket}. */
export interface UpgradeServerSocketOptions {
  /** Milliseconds the client has to complete the handshake. */
  handshakeTimeoutMs: number;
  /** Picks another certificate by the client's SNI name; `undefined` keeps `context`. */
  sni?: (servername: string) => tls.SecureContext | undefined;
}

/**
 * Run the server side of a TLS handshake on an accepted socket.
 *
 * In Deno the wrapped socket must be paused before `new tls.TLSSocket` and
 * the TLS socket resumed once listeners are attached, or the handshake never
 * starts (measured; see FACTS.md). No-delay is set so the first reply after
 * the handshake does not wait for a delayed ACK.
 *
 * The returned socket is paused, so bytes the client sends right after its
 * Finished message wait for the caller: attach `data`/`error` listeners and
 * call `resume()`. The listeners added here are removed before the promise
 * settles, so the caller must attach its own `error` listener (right after
 * `await`; errors arrive from I/O callbacks, never before). On failure both
 * sockets are destroyed.
 *
 * @example Implicit TLS at accept
 * ```ts ignore
 * const server = net.createServer(async (sock) => {
 *   const secure = await upgradeServerSocket(sock, provider.current(), { handshakeTimeoutMs: 30_000 });
 *   secure.on("error", () => secure.destroy());
 *   secure.on("data", onBytes);
 *   secure.resume();
 *   secure.write("220 ready\r\n");
 * });
 * ```
 *
 * @param sock The accepted plain socket; nothing must be reading from it.
 * @param context The certificate and protocol settings to serve.
 * @param options The handshake timeout.
 * @returns The TLS socket once the handshake completed.
 * @throws {TlsHandshakeError} On timeout, disconnect or a failed handshake.
 */
export function upgradeServerSocket(
  sock: net.Socket,
  context: tls.SecureContext,
  options: UpgradeServerSocketOptions,
): Promise<tls.TLSSocket> {
  if (sock.destroyed) {
    return Promise.reject(
      new TlsHandshakeError("closed", "connection closed before the TLS handshake"),
    );
  }
  sock.setNoDelay(true);
  sock.pause();
  const sni = options.sni;
  const secure = new tls.TLSSocket(sock, {
    isServer: true,
    secureContext: context,
    ...(sni ? { SNICallback: (name: string, done) => done(null, sni(name) ?? context) } : {}),
  });
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    let settled = false;
    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      secure.off("secure", onSecure);
      secure.off("error", onError);
      secure.off("close", onClose);
      sock.off("close", onClose);
    };
    const fail = (error: TlsHandshakeError) => {
      if (settled) return;
      cleanup();
      // Late errors from a destroyed socket must not become uncaught exceptions.
      secure.on("error", ignore);
      secure.destroy();
      sock.destroy();
      reject(error);
    };
    const onSecure = () => {
      if (settled) return;
      cleanup();
      // Hold bytes the client sent right behind its Finished until the caller listens.
      secure.pause();
      secure.setNoDelay(true);
      resolve(secure);
    };
    const onError = (error: Error) =>
      fail(
        new TlsHandshakeError("error", `TLS handshake failed: ${error.message}`, { cause: error }),
      );
    const onClose = () =>
      fail(new TlsHandshakeError("closed", "connection closed during the TLS handshake"));
    const timer = setTimeout(
      () =>
        fail(
          new TlsHandshakeError(
            "timeout",
            `TLS handshake not completed within ${options.handshakeTimeoutMs} ms`,
          ),
        ),
      options.handshakeTimeoutMs,
    );
    secure.once("secure", onSecure);
    secure.on("error", onError);
    secure.once("close", onClose);
    sock.once("close", onClose);
    secure.resume();
  });
}

function ignore(): void {}
