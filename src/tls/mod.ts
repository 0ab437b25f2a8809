/**
 * TLS for the listeners: load and check the certificate and key, hold the
 * live `SecureContext` (reloadable), run the server side of a handshake on an
 * accepted socket, and generate development certificates signed by a local CA.
 *
 * @example Serve implicit TLS
 * ```ts ignore
 * import * as net from "node:net";
 * import { TlsContextProvider, upgradeServerSocket } from "./mod.ts";
 *
 * const tlsContext = await TlsContextProvider.load(config.tls);
 * net.createServer(async (sock) => {
 *   const secure = await upgradeServerSocket(sock, tlsContext.current(), {
 *     handshakeTimeoutMs: config.tls.handshake_timeout_seconds * 1000,
 *   });
 *   // attach listeners, then secure.resume()
 * }).listen(8465, "127.0.0.1");
 * ```
 *
 * @module
 */
export {
  type DevCertificatePaths,
  ensureDevCertificates,
  type EnsureDevCertificatesOptions,
  type EnsureDevCertificatesResult,
  generateDevCertificates,
  type GenerateDevCertificatesOptions,
  pathExists,
  type SubjectAltName,
  subjectAltNames,
} from "./dev_ca.ts";
export {
  type CertificateInfo,
  createServerContext,
  describeCertificate,
  loadTlsMaterial,
  type ServerContextOptions,
  type TlsContextOptions,
  TlsContextProvider,
  type TlsMaterial,
  TlsMaterialError,
  type TlsMinVersion,
  type TlsPaths,
} from "./context.ts";
export {
  TlsHandshakeError,
  type TlsHandshakeFailure,
  upgradeServerSocket,
  type UpgradeServerSocketOptions,
} from "./upgrade.ts";
export {
  startTlsReloader,
  type TlsReloader,
  type TlsReloaderOptions,
  type TlsReloadResult,
  type TlsWatchActivity,
} from "./watch.ts";
export { type SniCertificateConfig, SniCertificates } from "./sni.ts";
