/**
 * `relay serve`: starts the relay and runs until SIGINT/SIGTERM, then shuts
 * down gracefully (stop accepting, finish transactions, 421 to idle clients).
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { log } from "../observability/logger.ts";
import { startRelay } from "../relay.ts";

const logger = log();

/** Runs the server; resolves with the exit code once it has stopped. */
export async function runServe(config: Config, configPath: string | null): Promise<number> {
  const relay = await startRelay(config);
  const ports = relay.listeners.map((l) => `${l.kind} ${l.hostname}:${l.port}`).join(", ");
  const info = relay.tls.info;
  logger.info("relay {hostname} listening: {ports}", { hostname: config.server.hostname, ports });
  logger.info("config: {path}", { path: configPath ?? "(none found: embedded defaults)" });
  logger.info(
    config.tls.reload
      ? "TLS certificate {cert} ({subject}, valid until {until}, profile {profile}, TLS >= {min}); reloaded when the files change and on SIGHUP"
      : "TLS certificate {cert} ({subject}, valid until {until}, profile {profile}, TLS >= {min}); reloaded on SIGHUP",
    {
      cert: config.tls.cert,
      subject: info.subject,
      until: info.notAfter,
      profile: config.tls.profile,
      min: config.tls.min_version,
    },
  );
  logger.info("users: {users} and {dir}/<domain>.txt; spool: {spool}; delivery: {relayUrl}", {
    users: config.auth.file.users,
    dir: config.auth.file.users_dir,
    spool: config.spool.dir,
    relayUrl: config.relay.url,
  });
  const rotation = [
    config.audit.max_bytes > 0 ? `at ${config.audit.max_bytes} bytes` : "",
    config.audit.rotate_daily ? "daily (UTC)" : "",
  ].filter((s) => s !== "").join(" and ") || "never";
  logger.info(
    config.audit.required
      ? "audit trail: {audit} (rotated {rotation}, {files} old files kept); required: mail is refused while it cannot be written"
      : "audit trail: {audit} (rotated {rotation}, {files} old files kept)",
    { audit: config.audit.file, rotation, files: config.audit.max_files },
  );
  if (relay.oauth) {
    logger.info("OAuth2: {url}/.well-known/oauth-authorization-server (login page, token, JWKS)", {
      url: relay.oauth.url,
    });
  }
  logger.info(
    "add a user with: deno task relay user add alice@example.com  (then AUTH PLAIN/LOGIN over TLS)",
  );

  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => {
    const handler = () => resolve(signal);
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  // SIGHUP re-reads the certificate and key, and the DKIM keys; the outcome is logged, the server keeps running.
  const onHangup = () => {
    void relay.reloadTls("SIGHUP");
    void relay.reloadDkim();
  };
  if (Deno.build.os !== "windows") {
    Deno.addSignalListener("SIGHUP", onHangup);
    handlers.push(["SIGHUP", onHangup]);
  }
  const signal = await stopped;
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  logger.info("{signal}: shutting down (grace {grace}s)", {
    signal,
    grace: config.server.shutdown_grace_seconds,
  });
  await relay.close();
  logger.info("stopped");
  return 0;
}
