/**
 * The relay's Prometheus metrics (npm `prom-client`), one registry per relay
 * so several relays in one process (tests) never share counters.
 *
 * Most counters are derived from the audit event stream
 * ({@linkcode RelayMetrics.observeAuditEvent}: AUTH attempts, accepted and
 * refused messages, rate-limit refusals, STARTTLS failures), deliveries from
 * {@linkcode RelayMetrics.instrumentBackend}, and the listeners report
 * connections and implicit-TLS handshake failures through
 * {@linkcode RelayMetrics.listenerObserver}. Gauges are read when scraped.
 *
 * @example
 * ```ts ignore
 * const metrics = new RelayMetrics();
 * const audit = observeAuditLog(fileAudit, (event) => metrics.observeAuditEvent(event));
 * metrics.attach({ sessionsActive: () => smtp.sessions });
 * const text = await metrics.text();
 * ```
 *
 * @module
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AuditEvent } from "../audit/mod.ts";
import type { DeliveryBackend } from "../delivery/backend.ts";
import type { RecipientOutcome } from "../mail/mod.ts";

/** Every metric name starts with this. */
export const METRIC_PREFIX = "relay_";

/** Where scraped gauges read their values; absent ones read 0. */
export interface MetricsSources {
  /** SMTP sessions open now. */
  sessionsActive(): number;
  /** Messages the queue manager holds, by stage. */
  queue(): { ready: number; active: number; deferred: number };
  /** Failed writes of the audit file so far (monotonic). */
  auditWriteFailures(): number;
  /** Spool transactions so far, with their own fsync and without (monotonic). */
  spoolCommits(): { synced: number; unsynced: number };
}

/** What the SMTP listeners report that no audit event carries. */
export interface ListenerObserver {
  /** A TCP connection was accepted on a listener (`smtps`, `submission`). */
  connectionOpened(listener: string): void;
}

/** Options for {@linkcode RelayMetrics}. */
export interface RelayMetricsOptions {
  /** Also export process and runtime metrics (CPU, memory, heap, event loop). Default true. */
  processMetrics?: boolean;
}

/** Label values come from events; anything unexpected is folded so cardinality stays bounded. */
function label(value: unknown, fallback: string): string {
  const text = typeof value === "string" ? value.toLowerCase() : "";
  return /^[a-z0-9_.-]{1,40}$/.test(text) ? text : fallback;
}

/** The relay's metrics and the hooks that feed them. */
export class RelayMetrics {
  /** The registry `/metrics` renders. */
  readonly registry: Registry = new Registry();
  #sources: Partial<MetricsSources> = {};
  #auditFailuresSeen = 0;

  readonly #connections: Counter<"listener">;
  readonly #workerConnections: Counter<"worker">;
  readonly #tlsFailures: Counter<"listener">;
  readonly #authAttempts: Counter<"mechanism" | "outcome">;
  readonly #accepted: Counter;
  readonly #refused: Counter<"reason">;
  readonly #dkim: Counter<"result">;
  readonly #rateLimited: Counter<"scope">;
  readonly #deliveryAttempts: Counter<"outcome">;
  readonly #deliveryDuration: Histogram;

  /** Registers every metric (at zero) in a new registry. */
  constructor(options: RelayMetricsOptions = {}) {
    const registers = [this.registry];
    const sources = () => this.#sources;
    this.#connections = new Counter({
      name: "relay_smtp_connections_total",
      help: "TCP connections accepted, by listener.",
      labelNames: ["listener"],
      registers,
    });
    this.#workerConnections = new Counter({
      name: "relay_smtp_worker_connections_total",
      help: "TCP connections accepted, by session worker (server.workers > 1).",
      labelNames: ["worker"],
      registers,
    });
    new Gauge({
      name: "relay_smtp_sessions_active",
      help: "SMTP sessions open now.",
      registers,
      collect() {
        this.set(sources().sessionsActive?.() ?? 0);
      },
    });
    this.#tlsFailures = new Counter({
      name: "relay_tls_handshake_failures_total",
      help: "TLS handshakes that failed (SMTPS at connect, submission after STARTTLS).",
      labelNames: ["listener"],
      registers,
    });
    this.#authAttempts = new Counter({
      name: "relay_auth_attempts_total",
      help:
        "Authentication attempts (SMTP AUTH and the OAuth login page) by mechanism and outcome.",
      labelNames: ["mechanism", "outcome"],
      registers,
    });
    this.#accepted = new Counter({
      name: "relay_messages_accepted_total",
      help: "Messages accepted (250 after DATA).",
      registers,
    });
    this.#refused = new Counter({
      name: "relay_messages_refused_total",
      help: "Messages refused by policy, by reason.",
      labelNames: ["reason"],
      registers,
    });
    this.#dkim = new Counter({
      name: "relay_dkim_messages_total",
      help: "Accepted messages by DKIM result: signed, or unsigned (no key for the domain).",
      labelNames: ["result"],
      registers,
    });
    this.#dkim.inc({ result: "signed" }, 0);
    this.#dkim.inc({ result: "unsigned" }, 0);
    this.#rateLimited = new Counter({
      name: "relay_rate_limit_refusals_total",
      help: "Refusals by a rate limit or connection cap, by scope.",
      labelNames: ["scope"],
      registers,
    });
    this.#deliveryAttempts = new Counter({
      name: "relay_delivery_attempts_total",
      help: "Delivery attempts per recipient, by outcome (delivered, deferred, failed).",
      labelNames: ["outcome"],
      registers,
    });
    this.#deliveryDuration = new Histogram({
      name: "relay_delivery_duration_seconds",
      help: "Time one delivery attempt of a message to the backend took.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    new Gauge({
      name: "relay_queue_messages",
      help: "Messages in the delivery queue, by state (ready, active, deferred).",
      labelNames: ["state"],
      registers,
      collect() {
        const queue = sources().queue?.() ?? { ready: 0, active: 0, deferred: 0 };
        for (const [state, count] of Object.entries(queue)) this.set({ state }, count);
      },
    });
    const seen = (value?: number) => {
      // A monotonic source read at scrape time: add what is new since the last scrape.
      const delta = (value ?? 0) - this.#auditFailuresSeen;
      if (delta > 0) this.#auditFailuresSeen += delta;
      return Math.max(delta, 0);
    };
    new Counter({
      name: "relay_audit_write_failures_total",
      help: "Failed writes of the audit trail.",
      registers,
      collect() {
        this.inc(seen(sources().auditWriteFailures?.()));
      },
    });
    const committed = { yes: 0, no: 0 };
    new Counter({
      name: "relay_spool_commits_total",
      help:
        "Spool transactions: with their own fsync (sync=yes), or only removals and deferrals, left to the next fsync (sync=no).",
      labelNames: ["sync"],
      registers,
      collect() {
        const now = sources().spoolCommits?.() ?? { synced: 0, unsynced: 0 };
        for (const [sync, total] of [["yes", now.synced], ["no", now.unsynced]] as const) {
          const delta = Math.max(total - committed[sync], 0);
          committed[sync] += delta;
          this.inc({ sync }, delta);
        }
      },
    });
    // Known label values start at 0, so dashboards and alerts see the series before the first event.
    for (const listener of ["smtps", "submission"]) {
      this.#connections.inc({ listener }, 0);
      this.#tlsFailures.inc({ listener }, 0);
    }
    for (const outcome of ["delivered", "deferred", "failed"]) {
      this.#deliveryAttempts.inc({ outcome }, 0);
    }
    for (const reason of ["quota", "domain_mismatch", "domain_disabled"]) {
      this.#refused.inc({ reason }, 0);
    }
    for (const scope of ["ip", "email", "domain", "connection"]) {
      this.#rateLimited.inc({ scope }, 0);
    }
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
    }
  }

  /** Sets where scraped gauges read from (called once the relay's parts exist). */
  attach(sources: Partial<MetricsSources>): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /** The hook the SMTP listeners call. */
  /** Counts a connection accepted by session worker `worker` (`server.workers` > 1). */
  observeWorkerConnection(worker: number): void {
    this.#workerConnections.inc({ worker: String(worker) });
  }

  readonly listenerObserver: ListenerObserver = {
    connectionOpened: (listener) => this.#connections.inc({ listener: label(listener, "other") }),
  };

  /** Counts what an audit event says happened (wire it with `observeAuditLog`). */
  observeAuditEvent(event: AuditEvent): void {
    switch (event.event) {
      case "auth_attempt":
        this.#authAttempts.inc({
          mechanism: label(event.method, "unknown").toUpperCase(),
          outcome: event.success === true ? "success" : label(event.reason, "failure"),
        });
        break;
      case "message_accepted":
        this.#accepted.inc();
        break;
      case "quota_exceeded":
        this.#refused.inc({ reason: "quota" });
        break;
      case "domain_mismatch":
        this.#refused.inc({
          reason: event.reason === "sender_domain_disabled" ? "domain_disabled" : "domain_mismatch",
        });
        break;
      case "message_refused":
        this.#refused.inc({ reason: label(event.reason, "other") });
        break;
      case "rate_limit":
        // Lockouts also audit the blocks they set and the delays; only refusals count here.
        if (event.action !== undefined && event.action !== "refused") break;
        this.#rateLimited.inc({
          scope: event.reason === "connection_limit" ? "connection" : label(event.scope, "other"),
        });
        break;
      case "security_tls_failed":
        this.#tlsFailures.inc({ listener: label(event.port, "other") });
        break;
    }
  }

  /** Counts an accepted message as DKIM-signed or unsigned. */
  observeDkim(signed: boolean): void {
    this.#dkim.inc({ result: signed ? "signed" : "unsigned" });
  }

  /**
   * Times one delivery attempt and counts its recipients' outcomes; a
   * rejection counts every recipient as deferred (the queue retries them).
   */
  async observeDelivery<T>(
    recipients: number,
    attempt: () => Promise<T>,
    outcomes: (result: T) => RecipientOutcome[],
  ): Promise<T> {
    const stop = this.#deliveryDuration.startTimer();
    try {
      const result = await attempt();
      for (const outcome of outcomes(result)) {
        this.#deliveryAttempts.inc({ outcome: outcome.status });
      }
      return result;
    } catch (error) {
      this.#deliveryAttempts.inc({ outcome: "deferred" }, recipients);
      throw error;
    } finally {
      stop();
    }
  }

  /** The backend with every `deliver` call timed and counted (for the queue manager). */
  instrumentBackend(backend: DeliveryBackend): DeliveryBackend {
    return {
      name: backend.name,
      deliver: (envelope, data, recipients) =>
        this.observeDelivery(
          recipients.length,
          () => backend.deliver(envelope, data, recipients),
          (outcomes) => outcomes,
        ),
      close: () => backend.close(),
    };
  }

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }

  /** The `content-type` of {@linkcode RelayMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
