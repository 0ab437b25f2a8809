/**
 * Assembles a running relay from a configuration: TLS material, the
 * authenticator chain, the spool, the queue manager with its delivery
 * backend, the audit trail and the SMTP listeners. `relay serve` and the
 * tests both start the relay through {@link startRelay}.
 *
 * @module
 */
import { type AuditLog, FileAuditLog } from "./audit/mod.ts";
import { createAuthenticator, type CreateAuthenticatorOptions } from "./auth/mod.ts";
import type { BearerAuthenticator, PasswordAuthenticator } from "./auth/authenticator.ts";
import type { Config } from "./config/mod.ts";
import { createDeliveryBackend, type DeliveryBackend, relayPassthrough } from "./delivery/mod.ts";
import { parseRelayConfig } from "./config/relay_schema.ts";
import { log } from "./observability/logger.ts";
import { QueueManager, queueSettings, Spool, writeState } from "./queue/mod.ts";
import {
  type BoundListener,
  type ListenerSpec,
  type MechanismSpec,
  type ProxyListenerOptions,
  SmtpServer,
  TrustedProxies,
} from "./smtp/mod.ts";
import {
  type CertificateInfo,
  SniCertificates,
  startTlsReloader,
  TlsContextProvider,
} from "./tls/mod.ts";
import { openSharedState } from "./state/mod.ts";
import { readStateFiles } from "./config/state_schema.ts";
import {
  AuthRateLimiter,
  authRateLimiterOptions,
  ConnectionRateLimiter,
  ConnectionSlots,
  CredentialFingerprinter,
  IpRateLimiter,
  normalizeDomain,
  oauthRateLimitHook,
  observeOAuthLogins,
  SendQuota,
} from "./policy/mod.ts";
import { LdapAuthenticator, readLdapCa } from "./auth/ldap/mod.ts";
import {
  type OAuthServer,
  RedisKeySetStorage,
  RedisOAuthStore,
  startOAuthServer,
} from "./oauth/mod.ts";
import { createExternalBearerAuthenticator } from "./auth/token_verifier.ts";
import {
  createOAuthBearer,
  createXoauth2,
  oauthbearerFailureChallenge,
  xoauth2FailureChallenge,
} from "./sasl/mod.ts";

const logger = log();

/** Hooks for tests and for features wired in from other folders. */
export interface StartRelayOptions {
  /** Use this audit log instead of opening `audit.file`. */
  audit?: AuditLog;
  /** Use this authenticator instead of building one from `auth.backends`. */
  authenticator?: PasswordAuthenticator;
  /** Options for {@link createAuthenticator} (tests pass a cheap hasher). */
  authOptions?: CreateAuthenticatorOptions;
  /** Use this backend instead of the one `relay.url` names. */
  backend?: DeliveryBackend;
  /** Bearer-token verification (OAuth2) and its SASL mechanisms. */
  bearer?: {
    verifier: BearerAuthenticator;
    mechanisms: Record<string, MechanismSpec>;
    failureChallenge: (mechanism: string, status: string, scope: string) => Uint8Array;
  };
  /** Do not deliver (the queue only fills); for tests of the spool. */
  holdQueue?: boolean;
  /** How often the OAuth key set is checked for another node's rotation (ms); default 30 s. */
  oauthKeysReloadIntervalMs?: number;
}

/** A running relay. */
export interface Relay {
  config: Config;
  /** Bound listener addresses (port 0 in config becomes the real port). */
  listeners: BoundListener[];
  /** Port of a listener kind. */
  port(kind: "smtps" | "submission"): number;
  spool: Spool;
  queue: QueueManager;
  tls: TlsContextProvider;
  /**
   * Re-reads `tls.cert` and `tls.key` (on SIGHUP) and logs the outcome; never
   * rejects. On an error the served certificate stays. Resolves with the
   * certificate served afterwards and whether the new files were taken.
   */
  reloadTls(trigger?: string): Promise<{ ok: boolean; info: CertificateInfo }>;
  authenticator: PasswordAuthenticator;
  audit: AuditLog;
  /** The embedded OAuth2 authorization server, when `oauth.enabled`. */
  oauth: OAuthServer | null;
  /** Graceful stop: listeners, sessions (within the grace period), queue, audit. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Builds the delivery backend `[relay]` describes: `file:DIR`, an SMTP smart
 * host (`smtp://`, `smtps://`) with pooled connections, and per-sender-domain
 * routes.
 */
export async function createBackend(config: Config): Promise<DeliveryBackend> {
  return await createDeliveryBackend(parseRelayConfig(config.relay), {
    hostname: config.server.hostname,
  });
}

/** Starts everything `config` describes. Rejects, releasing what was opened, on failure. */
export async function startRelay(config: Config, options: StartRelayOptions = {}): Promise<Relay> {
  const cleanups: (() => Promise<void> | void)[] = [];
  const undo = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    const tls = await TlsContextProvider.load({
      ...config.tls,
      hostnames: [config.server.hostname],
    });
    if (tls.generated) {
      logger.warning(
        "generated a development CA and certificate in {dir}; clients must trust {ca}",
        { dir: tls.generated.paths.dir, ca: tls.generated.paths.caCert },
      );
    }
    // New handshakes get a reloaded pair; open connections keep theirs.
    const tlsReloader = startTlsReloader(tls, { watch: config.tls.reload });
    cleanups.push(() => tlsReloader.close());
    const sni = await SniCertificates.load(config.tls.certificates, config.tls.min_version);
    for (const { names, info } of sni.served) {
      logger.info("TLS: {names} served with {subject} (valid until {until})", {
        names: names.join(", "),
        subject: info.subject,
        until: info.notAfter.toISOString(),
      });
    }
    const audit = options.audit ?? await FileAuditLog.open({
      path: config.audit.file,
      maxBytes: config.audit.max_bytes,
      maxFiles: config.audit.max_files,
      rotateDaily: config.audit.rotate_daily,
      required: config.audit.required,
    });
    if (!options.audit) cleanups.push(() => audit.close());

    // The LDAP backend needs its CA file read before the (synchronous) chain is built.
    const ldapCa = config.auth.backends.includes("ldap") && !options.authenticator
      ? await readLdapCa(config.ldap)
      : undefined;
    const authenticator = options.authenticator ??
      createAuthenticator(config, {
        backends: { ldap: (c) => new LdapAuthenticator(c.ldap, { caPem: ldapCa }) },
        ...options.authOptions,
      });
    if (!options.authenticator) cleanups.push(() => authenticator.close());

    const spool = await Spool.open(config.spool.dir);
    const backend = options.backend ?? await createBackend(config);
    if (!options.backend) cleanups.push(() => backend.close());
    const queue = new QueueManager({ spool, backend, audit, ...queueSettings(config) });
    cleanups.push(() => queue.stop());

    const hold = options.holdQueue || config.spool.hold;
    const disabled = new Set(
      config.domains.disabled.map((d) => normalizeDomain(d) ?? d.toLowerCase()),
    );
    // Counters for rate limits and quotas: in memory on one node, in Redis for several.
    const shared = await openSharedState(config.state, await readStateFiles(config.state), {
      onChange: (available, error) => {
        if (!available) {
          logger.error("shared state unavailable ({fail}): {error}", {
            fail: config.state.fail === "open" ? "failing open: per-node limits" : "failing closed",
            error: error?.message ?? "",
          });
        } else logger.warning("shared state available again");
        audit.record({
          event: available ? "state_available" : "state_unavailable",
          backend: config.state.backend,
          fail: config.state.fail,
          ...(error ? { detail: error.message } : {}),
        });
      },
    });
    cleanups.push(() => shared.close());
    if (shared.redis && !shared.redis.ready) {
      logger.error(
        "Redis at {url} is not reachable yet; [state] fail = {fail} applies until it is",
        {
          url: new URL(config.state.url).host,
          fail: config.state.fail,
        },
      );
    }
    const state = shared.store;
    const authLimiter = new AuthRateLimiter({
      store: state,
      ...authRateLimiterOptions(config.rate_limit),
    });
    const quota = new SendQuota({ store: state, limits: config.quota });
    const connectionRate = config.rate_limit.connections_per_ip_per_minute > 0
      ? new ConnectionRateLimiter({
        store: state,
        perMinute: config.rate_limit.connections_per_ip_per_minute,
      })
      : undefined;

    // With Redis, max_connections_per_ip counts the connections on every node.
    const connectionSlots = shared.redis
      ? new ConnectionSlots({ store: state, perIp: config.limits.max_connections_per_ip })
      : undefined;
    if (connectionSlots) cleanups.push(() => connectionSlots.close());

    // OAuth2: the embedded authorization server verifies its own tokens
    // locally; an external IdP (remote JWKS or introspection) may be used too.
    let oauth: OAuthServer | null = null;
    if (config.oauth.enabled) {
      oauth = await startOAuthServer({
        config: config.oauth,
        authenticator,
        audit: observeOAuthLogins(
          authLimiter,
          // Login-page attempts are auth attempts like SMTP AUTH; the rest are OAuth events.
          (event) =>
            event.event === "oauth.login"
              ? audit.record({
                ...event,
                event: "auth_attempt",
                method: "OAUTH_LOGIN",
                success: event.outcome === "success",
              })
              : audit.record({ ...event, event: `security_${String(event.event)}` }),
        ),
        rateLimit: oauthRateLimitHook({
          login: authLimiter,
          register: new IpRateLimiter({
            store: state,
            limit: config.rate_limit.oauth_registrations_per_ip_per_hour,
            windowMs: 3_600_000,
            name: "oauth_register",
          }),
        }),
        domainEnabled: (domain) => !disabled.has(domain),
        ...(shared.redis
          ? {
            store: new RedisOAuthStore(shared.redis),
            keyStorage: new RedisKeySetStorage(shared.redis),
          }
          : {}),
        keysReloadIntervalMs: options.oauthKeysReloadIntervalMs,
      });
      const server = oauth;
      cleanups.push(() => server.close());
      logger.info("OAuth2 authorization server at {url} (issuer {issuer})", {
        url: oauth.url,
        issuer: oauth.issuer,
      });
    }
    const verifier = options.bearer?.verifier ?? oauth?.verifier ??
      createExternalBearerAuthenticator(config.oauth.external, {
        domainEnabled: (domain) => !disabled.has(domain),
      }) ?? undefined;
    const bearer = verifier
      ? {
        verifier,
        mechanisms: options.bearer?.mechanisms ?? {
          XOAUTH2: { create: createXoauth2 },
          OAUTHBEARER: { create: createOAuthBearer },
        },
        failureChallenge: options.bearer?.failureChallenge ??
          ((mechanism: string, status: string, scope: string) =>
            mechanism === "XOAUTH2"
              ? xoauth2FailureChallenge(status, scope)
              : oauthbearerFailureChallenge(status, scope, verifier.openidConfiguration)),
      }
      : undefined;

    if (config.smtps.proxy_protocol && config.smtps.proxy_tls_terminated) {
      throw new Error(
        "smtps.proxy_tls_terminated: the SMTPS listener does its own TLS; point a proxy " +
          "that terminates TLS at the plain [submission] listener",
      );
    }
    // PROXY protocol (HAProxy in front): the header's source is the client.
    const proxy = (section: Config["smtps"]): ProxyListenerOptions | undefined =>
      section.proxy_protocol
        ? {
          trusted: new TrustedProxies(section.trusted_proxies),
          tlsTerminated: section.proxy_tls_terminated,
          headerTimeoutMs: section.proxy_header_timeout_seconds * 1000,
        }
        : undefined;
    const listeners: ListenerSpec[] = [];
    if (config.smtps.enabled) {
      listeners.push({ kind: "smtps", listen: config.smtps.listen, proxy: proxy(config.smtps) });
    }
    if (config.submission.enabled) {
      listeners.push({
        kind: "submission",
        listen: config.submission.listen,
        proxy: proxy(config.submission),
      });
    }
    const smtp = new SmtpServer({
      listeners,
      secureContext: () => tls.current(),
      sni: sni.size > 0 ? (name) => sni.lookup(name) : undefined,
      handshakeTimeoutMs: config.tls.handshake_timeout_seconds * 1000,
      maxConnections: config.limits.max_connections,
      maxConnectionsPerIp: config.limits.max_connections_per_ip,
      connectionRate,
      connectionSlots,
      session: {
        hostname: config.server.hostname,
        maxMessageBytes: config.limits.max_message_bytes,
        maxRecipients: config.limits.max_recipients,
        abuse: {
          softErrorLimit: config.limits.soft_error_limit,
          hardErrorLimit: config.limits.hard_error_limit,
          errorDelayMs: config.limits.error_delay_ms,
          junkCommandLimit: config.limits.junk_command_limit,
        },
        commandTimeoutMs: config.limits.command_timeout_seconds * 1000,
        dataTimeoutMs: config.limits.data_timeout_seconds * 1000,
        disabledDomains: disabled,
        authenticator,
        bearer: bearer?.verifier,
        bearerMechanisms: bearer?.mechanisms,
        bearerFailureChallenge: bearer?.failureChallenge,
        spool,
        audit,
        authLimiter,
        fingerprint: new CredentialFingerprinter(),
        quota,
        passthrough: config.relay.mode === "passthrough"
          ? {
            relay: (envelope, source) => relayPassthrough(backend, envelope, source),
            markDelivered: async (id, outcomes) => {
              const now = new Date().toISOString();
              await writeState(spool, id, {
                attempts: 1,
                nextAttempt: now,
                firstAttempt: now,
                lastAttempt: now,
                done: Object.fromEntries(outcomes.map((o) => [o.recipient, o])),
              });
            },
          }
          : undefined,
        onQueued: hold
          ? () => {}
          : (id, hasState) => hasState ? queue.enqueue(id) : queue.enqueueNew(id),
      },
    });
    await smtp.start();
    if (hold) logger.warning("spool.hold is on: mail is accepted and kept, not delivered");
    else await queue.start();

    let closed: Promise<void> | null = null;
    return {
      config,
      listeners: smtp.listeners,
      port(kind) {
        const found = smtp.listeners.find((l) => l.kind === kind);
        if (!found) throw new Error(`no ${kind} listener`);
        return found.port;
      },
      spool,
      queue,
      tls,
      async reloadTls(trigger = "SIGHUP") {
        await sni.reload().catch((error: unknown) =>
          logger.error("TLS: extra certificates not reloaded ({trigger}): {error}", {
            trigger,
            error: String(error instanceof Error ? error.message : error),
          })
        );
        const result = await tlsReloader.reload(trigger);
        return { ok: result.ok, info: result.info };
      },
      authenticator,
      audit,
      oauth,
      close(graceMs = config.server.shutdown_grace_seconds * 1000) {
        closed ??= (async () => {
          await smtp.shutdown(graceMs);
          await undo();
        })();
        return closed;
      },
    };
  } catch (error) {
    await undo();
    throw error;
  }
}
