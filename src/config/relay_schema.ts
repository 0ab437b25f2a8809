/**
 * The `[relay]` section: where accepted mail goes, how the connections to
 * the backend are pooled, how deliveries are retried and where mail that can
 * be neither delivered nor bounced ends up.
 *
 * ```toml
 * [relay]
 * url = "smtp://mail.example.net:587?tls=starttls"   # or smtps://host:465, smtp://host:25?tls=none, file:DIR
 * username = "relay@example.net"                     # optional: AUTH PLAIN or LOGIN
 * password = "..."
 * ca = "/etc/relay/backend-ca.pem"                   # extra trusted CA (PEM)
 * verify = true                                      # certificate host name check
 * pool_size = 4
 *
 * [relay.routes."company.com"]                       # senders @company.com go elsewhere
 * url = "smtps://smtp.company.com:465"
 * ```
 *
 * A route's unset keys fall back to the `[relay]` values, except `username`,
 * `password` and `servername`, which belong to one host and are never inherited.
 *
 * @module
 */
import { z } from "zod";

const seconds = z.number().positive().max(86400 * 365);

/** Keys of one route; unset ones inherit from `[relay]` (credentials and `servername` never do). */
const routeSchema = z.strictObject({
  /** Backend of this route: `smtp://host:port?tls=starttls|none`, `smtps://host:port`, `file:DIR`. */
  url: z.string().min(1),
  /** AUTH identity at the backend; with `password`, AUTH PLAIN (or LOGIN) after TLS. */
  username: z.string().min(1).optional(),
  /** AUTH password at the backend (never logged). */
  password: z.string().min(1).optional(),
  /** A PEM file of CA certificates trusted in addition to the system roots. */
  ca: z.string().min(1).optional(),
  /** The name the backend's certificate must carry (default: the URL's host). */
  servername: z.string().min(1).optional(),
  /**
   * Check the certificate's host name. The chain is always verified (Deno cannot
   * skip it per connection): for a private CA set `ca`.
   */
  verify: z.boolean().optional(),
  /** Most connections open to the backend at once. */
  pool_size: z.number().int().min(1).max(1000).optional(),
  /** Messages sent over one connection before it is closed and replaced. */
  max_messages_per_connection: z.number().int().min(1).max(1_000_000).optional(),
  /** Seconds an unused pooled connection stays open. */
  idle_timeout: seconds.optional(),
});

/** The `[relay]` section. */
export const relaySchema = z.strictObject({
  /** Default backend: `file:DIR` (development), `smtp://host:port?tls=...`, `smtps://host:port`. */
  url: z.string().min(1).default("file:data/outbox"),
  /**
   * `queue`: store and forward (250 once spooled). `passthrough`: relay while
   * the client sends and answer with the backend's reply (needs the session hook).
   */
  mode: z.enum(["queue", "passthrough"]).default("queue"),
  /** AUTH identity at the backend (optional). */
  username: z.string().min(1).optional(),
  /** AUTH password at the backend (optional; never logged). */
  password: z.string().min(1).optional(),
  /** A PEM file of extra trusted CA certificates for the backend's certificate. */
  ca: z.string().min(1).optional(),
  /** The name the backend's certificate must carry (default: the URL's host). */
  servername: z.string().min(1).optional(),
  /**
   * Check the backend certificate's host name (default true). The chain is
   * always verified: Deno has no per-connection switch for that, so a backend
   * with a private CA needs `ca`.
   */
  verify: z.boolean().default(true),
  /** Most connections open to one backend at once. */
  pool_size: z.number().int().min(1).max(1000).default(4),
  /** Messages per connection before it is replaced (Postfix: smtp_connection_reuse_count_limit). */
  max_messages_per_connection: z.number().int().min(1).max(1_000_000).default(100),
  /** Seconds an unused pooled connection stays open before QUIT. */
  idle_timeout: seconds.default(30),
  /** Seconds for TCP connect plus the TLS handshake. */
  connect_timeout: seconds.default(30),
  /** Seconds to wait for each reply (RFC 5321 4.5.3.2: 5 minutes). */
  command_timeout: seconds.default(300),
  /** Seconds for sending the message and waiting for the final reply (RFC 5321: 10 minutes). */
  data_timeout: seconds.default(600),
  /** Messages in delivery at once, all routes together. */
  workers: z.number().int().min(1).max(10_000).default(16),
  /**
   * Seconds to wait before each retry of a deferred message; the last value
   * repeats. Default: exponential from one minute up to an hour (Postfix-like).
   */
  retry_schedule: z.array(seconds).min(1).default([60, 120, 240, 480, 960, 1920, 3600]),
  /** Seconds a message may stay in the queue before it is returned to its sender (5 days). */
  max_age: seconds.default(5 * 86400),
  /** Seconds between scans of the spool for `relay queue` requests (retry, delete). */
  scan_interval: seconds.default(5),
  /**
   * Where messages go that can be neither delivered nor returned (a null
   * sender, or a bounce that failed); default `<spool.dir>/dead`.
   */
  dead_letter_dir: z.string().min(1).optional(),
  /** Per-sender-domain routes: `[relay.routes."company.com"]`. Keys are domains. */
  routes: z.record(
    z.string().regex(/^[^\s@]+\.[^\s@]+$|^[^\s@.]+$/, "expected a domain name"),
    routeSchema,
  ).default({}),
}).prefault({});

/** The validated `[relay]` section. */
export type RelayConfig = z.infer<typeof relaySchema>;

/** One validated route. */
export type RelayRouteConfig = z.infer<typeof routeSchema>;

/** A `[relay]` section that does not validate; `issues` name the keys. */
export class RelayConfigError extends Error {
  /** Every problem found, `relay.`-prefixed key first. */
  readonly issues: { key: string; message: string }[];

  /** Builds the error from the problems found. */
  constructor(issues: { key: string; message: string }[]) {
    super(
      "invalid [relay] configuration:\n" +
        issues.map((i) => `  ${i.key}: ${i.message}`).join("\n"),
    );
    this.name = "RelayConfigError";
    this.issues = issues;
  }
}

/**
 * Validates a `[relay]` section (as parsed from TOML, or as the main schema
 * passed it through) and fills in the defaults.
 *
 * @throws {RelayConfigError} naming every bad key
 */
export function parseRelayConfig(raw: unknown): RelayConfig {
  const result = relaySchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  throw new RelayConfigError(result.error.issues.flatMap((issue) => {
    const extras = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return extras.map((extra) => ({
      key: ["relay", ...issue.path, ...(extra ? [extra] : [])].map(String).join("."),
      message: issue.code === "unrecognized_keys" ? "unknown key" : issue.message,
    }));
  }));
}
