/**
 * Assembles a running relay from a configuration: TLS material, the
 * authenticator chain, the spool, the queue manager with its delivery
 * backend, the audit trail and the SMTP listeners. `relay serve` and the
 * tests both start the relay through {@link startRelay}.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { normalizeDomain } from "./mail/mod.ts";
import { type AuditLog, FileAuditLog, observeAuditLog } from "./audit/mod.ts";
import {
  createAuthenticator,
  type CreateAuthenticatorOptions,
  createUserStore,
  knownDomainCheck,
} from "./auth/mod.ts";
import type { BearerAuthenticator, PasswordAuthenticator } from "./auth/authenticator.ts";
import { type Config, sessionWorkerCount } from "./config/mod.ts";
import { createDeliveryBackend, type DeliveryBackend, relayPassthrough } from "./delivery/mod.ts";
import { parseRelayConfig } from "./config/relay_schema.ts";
import { Cleanups } from "./cleanups.ts";
import { issuerMismatch } from "./config/oauth_schema.ts";
import { listenError, parseListen } from "./config/listen.ts";
import { log } from "./observability/logger.ts";
import { RelayMetrics } from "./observability/metrics.ts";
import {
  type AdminServer,
  auditCheck,
  readAdminToken,
  spoolWritableCheck,
  startAdminServer,
} from "./observability/admin_server.ts";
import { QueueManager, queueSettings, Spool } from "./queue/mod.ts";
import { DkimKeyring } from "./dkim/mod.ts";
import {
  type BoundListener,
  type Handoff,
  type ListenerSpec,
  LocalConnectionGate,
  type MechanismSpec,
  PassthroughSink,
  type ProxyListenerOptions,
  type SessionPolicy,
  SigningSink,
  SmtpServer,
  SpoolSink,
  SubmissionPolicy,
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
  ConnectionRateLimiter,
  ConnectionSlots,
  CredentialFingerprinter,
  IpRateLimiter,
  Lockout,
  lockoutOptions,
  oauthLockout,
  SendQuota,
} from "./policy/mod.ts";
import {
  type MailSettings,
  type OAuthServer,
  RedisKeySetStorage,
  RedisOAuthStore,
  startOAuthServer,
} from "./oauth/mod.ts";
import { createExternalBearerAuthenticator } from "./auth/token_verifier.ts";
import { readLdapCa } from "./auth/ldap/ca.ts";
import {
  createOAuthBearer,
  createXoauth2,
  oauthbearerFailureChallenge,
  xoauth2FailureChallenge,
} from "./sasl/mod.ts";
import { SessionWorkers } from "./workers/pool.ts";

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
  /**
   * Wraps the submission policy, e.g. to add checks of one's own at a stage
   * (a Haraka-style plugin) or, in tests, to fail on purpose.
   */
  policy?: (standard: SessionPolicy) => SessionPolicy;
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
  /** Re-reads the DKIM keys (on SIGHUP); on an error the loaded ones stay. Never rejects. */
  reloadDkim(): Promise<void>;
  authenticator: PasswordAuthenticator;
  audit: AuditLog;
  /** The embedded OAuth2 authorization server, when `oauth.enabled`. */
  oauth: OAuthServer | null;
  /** The Prometheus metrics. */
  metrics: RelayMetrics;
  /** The admin listener (`/metrics`, `/healthz/*`), when `admin.enabled`. */
  admin: AdminServer | null;
  /** The session workers, when `server.workers` is more than 1 (else sessions run here). */
  workers: SessionWorkers | null;
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
  const cleanups = new Cleanups((error) =>
    logger.error("shutdown step failed: {error}", { error: String(error) })
  );
  const undo = () => cleanups.run();
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
    const metrics = new RelayMetrics();
    const trail = options.audit ?? await FileAuditLog.open({
      path: config.audit.file,
      maxBytes: config.audit.max_bytes,
      maxFiles: config.audit.max_files,
      rotateDaily: config.audit.rotate_daily,
      required: config.audit.required,
    });
    if (!options.audit) cleanups.push(() => trail.close());
    // Counters follow the audit events: every part records through this tee.
    const audit = observeAuditLog(trail, (event) => metrics.observeAuditEvent(event));

    // The LDAP backend (npm ldapts, loaded only when configured) needs its CA file read
    // before the (synchronous) chain is built.
    const ldap = config.auth.backends.includes("ldap") && !options.authenticator
      ? {
        module: await import("./auth/ldap/authenticator.ts"),
        caPem: await readLdapCa(config.ldap),
      }
      : undefined;
    const authenticator = options.authenticator ??
      createAuthenticator(config, {
        backends: {
          ldap: (c) => {
            if (!ldap) throw new Error("the LDAP backend was not loaded");
            return new ldap.module.LdapAuthenticator(c.ldap, { caPem: ldap.caPem });
          },
        },
        ...options.authOptions,
      });
    if (!options.authenticator) cleanups.push(() => authenticator.close());

    const spool = await Spool.open(config.spool.dir);
    cleanups.push(() => spool.close());
    const backend = options.backend ?? await createBackend(config);
    if (!options.backend) cleanups.push(() => backend.close());
    const queue = new QueueManager({
      spool,
      backend: metrics.instrumentBackend(backend),
      audit,
      ...queueSettings(config),
    });
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
    const trustedNetworks = new TrustedProxies(config.limits.trusted_networks);
    const lockout = new Lockout({
      store: state,
      ...lockoutOptions(config.rate_limit, (ip) => trustedNetworks.has(ip)),
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
    // Filled in once the SMTP listeners are bound (autoconfig tells clients their ports).
    let boundListeners: BoundListener[] = [];
    if (config.oauth.enabled) {
      // The login page shares the SMTP lockouts (same scopes, same store).
      const loginHooks = oauthLockout({
        lockout,
        record: (event) => audit.record({ ...event, event: "rate_limit" }),
        register: new IpRateLimiter({
          store: state,
          limit: config.rate_limit.oauth_registrations_per_ip_per_hour,
          windowMs: 3_600_000,
          name: "oauth_register",
        }),
      });
      oauth = await startOAuthServer({
        config: config.oauth,
        authenticator,
        audit: loginHooks.observe(
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
        rateLimit: loginHooks.rateLimit,
        domainEnabled: (domain) => !disabled.has(domain),
        autoconfig: config.autoconfig.enabled
          ? {
            knownDomain: knownDomainCheck(config, createUserStore(config)),
            settings: () => mailSettings(config, boundListeners),
          }
          : undefined,
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
      const mismatch = issuerMismatch(config.oauth);
      if (mismatch) {
        logger.warning(
          "oauth.issuer {issuer} does not match oauth.listen {listen} ({mismatch}): clients " +
            "follow discovery to the issuer, so it must reach this listener (e.g. a reverse proxy)",
          { issuer: config.oauth.issuer, listen: config.oauth.listen, mismatch },
        );
      }
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
    // A committed message goes to delivery in memory (unless the queue is held).
    const handoff: Handoff = hold
      ? () => {}
      : (id, hasState, message) => hasState ? queue.enqueue(id) : queue.enqueueNew(id, message);
    const innerSink = config.relay.mode === "passthrough"
      ? new PassthroughSink({
        spool,
        relay: (envelope, source) =>
          metrics.observeDelivery(
            envelope.recipients.length,
            () => relayPassthrough(backend, envelope, source),
            (result) => result.recipients,
          ),
        handoff,
      })
      : new SpoolSink({ spool, handoff });
    // DKIM keys are read now and on SIGHUP (reloadDkim); a domain without keys goes unsigned.
    let keyring = config.dkim.enabled
      ? await DkimKeyring.load(config.dkim.dir)
      : DkimKeyring.empty();
    if (keyring.domains.length > 0) {
      logger.info("DKIM: signing for {domains}", { domains: keyring.domains.join(", ") });
    }
    // One gate counts every connection, whichever thread accepted it.
    const gate = new LocalConnectionGate({
      hostname: config.server.hostname,
      maxConnections: config.limits.max_connections,
      maxConnectionsPerIp: config.limits.max_connections_per_ip,
      connectionRate,
      observer: metrics.listenerObserver,
      connectionSlots,
    });
    // Shared with session workers, so a repeated stale password counts once on any thread.
    const fingerprintKey = new Uint8Array(randomBytes(32));
    const smtpOptions: ConstructorParameters<typeof SmtpServer>[0] = {
      listeners,
      secureContext: () => tls.current(),
      sni: sni.size > 0 ? (name) => sni.lookup(name) : undefined,
      handshakeTimeoutMs: config.tls.handshake_timeout_seconds * 1000,
      gate,
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
        dataMinBytesPerSecond: config.limits.data_min_bytes_per_second,
        dataRateGraceMs: config.limits.data_rate_grace_seconds * 1000,
        sessionMaxMs: config.limits.session_max_seconds * 1000,
        postmaster: config.server.postmaster ?? `postmaster@${config.server.hostname}`,
        authenticator,
        bearer: bearer?.verifier,
        bearerMechanisms: bearer?.mechanisms,
        bearerFailureChallenge: bearer?.failureChallenge,
        audit,
        lockout,
        fingerprint: new CredentialFingerprinter(fingerprintKey),
        policy: (options.policy ?? ((p) => p))(
          new SubmissionPolicy({
            disabledDomains: disabled,
            audit,
            quota,
            headerFrom: config.policy.header_from,
          }),
        ),
        sink: new SigningSink({
          inner: innerSink,
          keyring: () => keyring,
          tmpDir: join(config.spool.dir, "tmp"),
          onAccepted: (outcome) => metrics.observeDkim(outcome.keys.length > 0),
        }),
      },
    };
    // server.workers > 1: sessions on that many threads sharing the ports; state stays here.
    const workerCount = sessionWorkerCount(config.server.workers);
    const workers = workerCount > 1
      ? new SessionWorkers({
        count: workerCount,
        server: smtpOptions,
        tls,
        sni,
        fingerprintKey,
        logLevel: config.log.level,
        onConnection: (worker) => metrics.observeWorkerConnection(worker),
      })
      : null;
    const smtp = workers ?? new SmtpServer(smtpOptions);
    let closing = false;
    metrics.attach({
      sessionsActive: () => smtp.sessions,
      queue: () => queue.stats,
      auditWriteFailures: () => trail instanceof FileAuditLog ? trail.stats.writeErrors : 0,
      spoolCommits: () => spool.commits,
    });
    // Before the SMTP listeners, so that a bad admin.listen leaves nothing bound.
    let admin: AdminServer | null = null;
    if (config.admin.enabled) {
      const token = config.admin.token_file ? await readAdminToken(config.admin.token_file) : null;
      const server = startAdminServer({
        listen: config.admin.listen,
        token,
        metrics,
        limits: lockout,
        ready: [
          spoolWritableCheck(() => spool.probe()),
          auditCheck(audit, config.audit.file),
          {
            name: "listeners",
            check: () =>
              Promise.resolve(
                closing
                  ? "shutting down"
                  : smtp.listeners.length < listeners.length
                  ? "not every SMTP listener is bound"
                  : null,
              ),
          },
        ],
      });
      admin = server;
      cleanups.push(() => server.close());
      logger.info("admin listener at {url} (/metrics, /healthz/live, /healthz/ready)", {
        url: server.url,
      });
    }
    try {
      await smtp.start();
    } catch (error) {
      // Name the listener by its key: node's error carries the port; else the first not bound.
      const port = (error as { port?: unknown }).port;
      const failed = listeners.find((l) => parseListen(l.listen).port === port) ??
        listeners[smtp.listeners.length];
      throw failed ? listenError(`${failed.kind}.listen`, failed.listen, error) : error;
    }
    boundListeners = smtp.listeners;
    if (workers) {
      logger.info("SMTP sessions on {count} session workers (server.workers = {setting})", {
        count: workerCount,
        setting: config.server.workers,
      });
    }
    // Sessions stop first (the newest cleanup), within the grace `close` is given.
    let grace = config.server.shutdown_grace_seconds * 1000;
    cleanups.push(() => smtp.shutdown(grace));
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
        // The workers get the extra (SNI) pairs too, even when the main pair did not change.
        workers?.pushTls();
        return { ok: result.ok, info: result.info };
      },
      async reloadDkim() {
        if (!config.dkim.enabled) return;
        try {
          keyring = await DkimKeyring.load(config.dkim.dir);
          logger.info("DKIM: keys reloaded, signing for {domains}", {
            domains: keyring.domains.join(", ") || "no domain",
          });
        } catch (error) {
          logger.error("DKIM: keys not reloaded, the previous ones stay: {error}", {
            error: error instanceof Error ? error.message : String(error),
          });
        }
      },
      authenticator,
      audit: trail,
      oauth,
      metrics,
      admin,
      workers,
      close(graceMs = config.server.shutdown_grace_seconds * 1000) {
        grace = graceMs;
        closing = true;
        closed ??= undo();
        return closed;
      },
    };
  } catch (error) {
    await undo();
    throw error;
  }
}

/** What autoconfig tells clients: the public host name and the ports they should use. */
function mailSettings(config: Config, listeners: BoundListener[]): Omit<MailSettings, "oauth"> {
  const bound = (kind: string) => listeners.find((l) => l.kind === kind)?.port ?? null;
  const port = (enabled: boolean, configured: number, kind: string) =>
    !enabled ? null : configured !== 0 ? configured : bound(kind);
  return {
    hostname: config.server.public_hostname || config.server.hostname,
    smtps: port(config.smtps.enabled, config.autoconfig.smtps_port, "smtps"),
    submission: port(config.submission.enabled, config.autoconfig.submission_port, "submission"),
    imap: config.autoconfig.imap_hostname
      ? { hostname: config.autoconfig.imap_hostname, port: config.autoconfig.imap_port }
      : null,
  };
}
