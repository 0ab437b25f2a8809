/**
 * The configuration schema: every key the relay understands, its type, its
 * default and its range. Defaults here are the embedded defaults, so an empty
 * file (or none) yields a working local relay.
 *
 * @module
 */
import { z } from "zod";
import { ldapSchema } from "./ldap_schema.ts";
import { oauthSchema } from "./oauth_schema.ts";
import { relaySchema } from "./relay_schema.ts";
import { quotaSchema, rateLimitSchema } from "./limits_schema.ts";
import { stateSchema } from "./state_schema.ts";
import { dkimSchema, policySchema } from "./policy_schema.ts";
import { listenAddress } from "./listen.ts";
import { adminSchema, autoconfigSchema } from "./admin_schema.ts";

const positiveInt = z.number().int().positive();

/** An IPv4/IPv6 address or CIDR range. */
const cidrOrAddress = z.string().refine(
  (text) => z.union([z.cidrv4(), z.cidrv6(), z.ipv4(), z.ipv6()]).safeParse(text).success,
  'expected an IP address or CIDR range, e.g. "10.0.0.0/8" or "::1/128"',
);

const WORKERS_ERROR = 'expected "auto" or a number of threads from 1 to 256';

const serverSchema = z.strictObject({
  /** Name used in the banner, EHLO reply and Received: headers. */
  hostname: z.string().min(1).default("localhost"),
  /** The name clients connect to (autoconfig documents); empty: `hostname`. */
  public_hostname: z.string().default(""),
  /** Seconds a graceful shutdown waits for in-flight transactions. */
  shutdown_grace_seconds: z.number().min(0).max(3600).default(30),
  /**
   * Where `RCPT TO:<Postmaster>` (no domain, RFC 5321 4.5.1) is delivered;
   * default `postmaster@<hostname>`.
   */
  postmaster: z.string().regex(/^[^@\s<>]+@[^@\s<>.][^@\s<>]*[^@\s<>.]$/, {
    message: "expected an email address such as postmaster@example.com",
  }).optional(),
  /**
   * Session threads: `"auto"` (one per core) or a number. With more than one,
   * the SMTP sessions run on that many Workers sharing the ports
   * (`reusePort`); 1 runs them on the main thread. Default 1: on a 2-core
   * machine two workers measured slower than one (README "Several cores").
   */
  workers: z.union([
    z.literal("auto"),
    z.number().int({ error: WORKERS_ERROR }).min(1, { error: WORKERS_ERROR }).max(256, {
      error: WORKERS_ERROR,
    }),
  ], { error: WORKERS_ERROR }).default(1),
}).prefault({});

const listenerSchema = (listen: string) =>
  z.strictObject({
    enabled: z.boolean().default(true),
    listen: listenAddress(listen).default(listen),
    /**
     * Every connection starts with a PROXY protocol header (v1 or v2, e.g.
     * HAProxy `send-proxy-v2`) naming the client; without one it is closed.
     */
    proxy_protocol: z.boolean().default(false),
    /** Addresses or CIDR ranges (IPv4, IPv6) allowed to send that header. */
    trusted_proxies: z.array(cidrOrAddress).default(["127.0.0.1/32", "::1/128"]),
    /**
     * The proxy terminates TLS (HAProxy `ssl` bind + `send-proxy-v2-ssl`): a
     * header whose SSL TLV says the client used TLS counts as TLS. Plain
     * listeners (submission) only.
     */
    proxy_tls_terminated: z.boolean().default(false),
    /** Seconds a proxy has to send the whole header. */
    proxy_header_timeout_seconds: z.number().positive().max(60).default(5),
  }).refine((l) => l.proxy_protocol || !l.proxy_tls_terminated, {
    path: ["proxy_tls_terminated"],
    message: "needs proxy_protocol = true",
  }).refine((l) => !l.proxy_protocol || l.trusted_proxies.length > 0, {
    path: ["trusted_proxies"],
    message: "is empty: with proxy_protocol = true every connection would be refused",
  }).prefault({});

const tlsSchema = z.strictObject({
  cert: z.string().min(1).default("certs/server.crt"),
  key: z.string().min(1).default("certs/server.key"),
  /**
   * Mozilla's server-side TLS profiles: "intermediate" (TLS 1.2 and 1.3, ECDHE
   * key exchange with AEAD ciphers only: what mail clients of the last years
   * speak) or "modern" (TLS 1.3 only).
   */
  profile: z.enum(["intermediate", "modern"]).default("intermediate"),
  /** Lowest TLS version offered, overriding the profile's ("1.2" intermediate, "1.3" modern). */
  min_version: z.enum(["1.2", "1.3"]).optional(),
  /** Generate a development CA and certificate when `cert`/`key` are missing. */
  generate_if_missing: z.boolean().default(true),
  /** Seconds a client has to finish the TLS handshake. */
  handshake_timeout_seconds: z.number().positive().max(600).default(30),
  /**
   * Watch `cert` and `key` and serve a new pair once both parse and match
   * (SIGHUP reloads either way). Open connections keep their certificate.
   */
  reload: z.boolean().default(true),
  /**
   * Extra certificates chosen by the client's SNI name (several domains on one
   * listener). Each serves the DNS names in its certificate unless `hostnames`
   * says otherwise; any other name gets `cert`/`key`.
   */
  certificates: z.array(z.strictObject({
    cert: z.string().min(1),
    key: z.string().min(1),
    hostnames: z.array(z.string().min(1)).min(1).optional(),
  })).default([]),
}).transform((tls) => ({
  ...tls,
  // Resolved once here, so every listener and the start log agree.
  min_version: tls.min_version ?? (tls.profile === "modern" ? "1.3" : "1.2") as "1.2" | "1.3",
})).prefault({});

const authFileSchema = z.strictObject({
  /** The global user file (`email:{SCHEME}hash` lines). */
  users: z.string().min(1).default("config/users.txt"),
  /** A folder of per-domain files named `<domain>.txt`. */
  users_dir: z.string().min(1).default("config/users"),
  /** Accept `{PLAIN}` or bare passwords in user files (development only). */
  allow_plaintext: z.boolean().default(false),
  /**
   * After a successful login against a weaker hash (an imported `{SSHA}`,
   * SHA-crypt or bcrypt one, or argon2 with other parameters), write an
   * argon2id hash with `auth.argon2` into the users file. Off by default: the
   * relay then never writes to files an operator or a tool manages.
   */
  rehash_on_login: z.boolean().default(false),
}).prefault({});

const argon2Schema = z.strictObject({
  memory_kib: z.number().int().min(8).max(4_194_304).default(19456),
  iterations: z.number().int().min(1).max(100).default(2),
  parallelism: z.number().int().min(1).max(16).default(1),
}).prefault({});

const authSchema = z.strictObject({
  /** Authentication backends, tried in order. */
  backends: z.array(z.enum(["file", "ldap"])).min(1).default(["file"]),
  /** Password-hashing worker threads. */
  workers: z.number().int().min(1).max(64).default(2),
  /** Seconds a verified credential stays in the cache (0 disables the cache). */
  cache_ttl_seconds: z.number().int().min(0).max(86400).default(300),
  /** Most credentials kept in the cache. */
  cache_size: positiveInt.max(10_000_000).default(10000),
  /** Parameters for new argon2id hashes. */
  argon2: argon2Schema,
  file: authFileSchema,
}).prefault({});

const spoolSchema = z.strictObject({
  dir: z.string().min(1).default("data/spool"),
  /**
   * Accept and keep mail in the spool without delivering it (maintenance, or
   * measuring the accept path alone); set back to false and restart to release.
   */
  hold: z.boolean().default(false),
}).prefault({});

const auditSchema = z.strictObject({
  /** The JSON-lines audit file; rotated files are `<file>.1` (newest) to `<file>.<max_files>`. */
  file: z.string().min(1).default("logs/audit.jsonl"),
  /** Rotate before the file would exceed this many bytes (0: no size limit). */
  max_bytes: z.number().int().min(0).max(2 ** 50).default(100 * 1024 * 1024),
  /** Rotated files kept besides the active one; older ones are deleted (0: none kept). */
  max_files: z.number().int().min(0).max(10_000).default(10),
  /** Also rotate at the first write of each new UTC day. */
  rotate_daily: z.boolean().default(false),
  /** Refuse new mail (451 4.3.0) while the audit file cannot be written. */
  required: z.boolean().default(false),
}).prefault({});

const limitsSchema = z.strictObject({
  max_message_bytes: positiveInt.max(2 ** 31).default(26_214_400),
  max_recipients: positiveInt.max(100_000).default(100),
  /** Concurrent connections, all clients together. */
  max_connections: positiveInt.max(1_000_000).default(1000),
  /** Concurrent connections from one client address. */
  max_connections_per_ip: positiveInt.max(1_000_000).default(50),
  /**
   * Seconds a command line (or SASL response) has to arrive complete, counted
   * from when the server starts waiting for it: a deadline, not restarted by
   * trickling bytes (RFC 5321 4.5.3.2.7: 5 minutes).
   */
  command_timeout_seconds: z.number().positive().max(86400).default(300),
  /** Seconds the whole DATA section has to arrive in, counted from the 354 (a deadline). */
  data_timeout_seconds: z.number().positive().max(86400).default(600),
  /**
   * Least average DATA rate in bytes per second once `data_rate_grace_seconds`
   * have passed (Postfix's smtpd_min_data_rate: 500); 0: no minimum.
   */
  data_min_bytes_per_second: z.number().int().min(0).max(1_000_000_000).default(500),
  /** Seconds of DATA before the minimum rate applies. */
  data_rate_grace_seconds: z.number().positive().max(86400).default(30),
  /** Longest SMTP session in seconds, however busy; 0: unlimited. */
  session_max_seconds: z.number().min(0).max(7 * 86400).default(3600),
  /**
   * Client addresses or CIDR ranges exempt from address-wide authentication
   * blocks (an office NAT, a webmail host). Their (address, account) pairs are
   * still limited, so a guesser behind them cannot go on forever.
   */
  trusted_networks: z.array(cidrOrAddress).default([]),
  /** Errors in a session after which each error reply is delayed (Postfix: 10). */
  soft_error_limit: z.number().int().min(0).max(1000).default(10),
  /** Errors in a session after which it is closed with 421 4.7.0 (Postfix: 20). */
  hard_error_limit: z.number().int().min(1).max(1000).default(20),
  /** Milliseconds of delay per error past the soft limit (capped at 10 s). */
  error_delay_ms: z.number().int().min(0).max(10_000).default(1000),
  /** NOOP/RSET/VRFY/HELP/EHLO/HELO without a message before 421 4.7.0 (Postfix: 100). */
  junk_command_limit: z.number().int().min(1).max(100_000).default(100),
}).prefault({});

const domainsSchema = z.strictObject({
  /** Domains whose users may not authenticate or send. */
  disabled: z.array(z.string().min(1)).default([]),
}).prefault({});

const logSchema = z.strictObject({
  /** Lowest level written. */
  level: z.enum(["trace", "debug", "info", "warning", "error", "fatal"]).default("info"),
  /** "pretty" for humans, "json" for machines; "auto" picks pretty on a TTY. */
  format: z.enum(["auto", "pretty", "json"]).default("auto"),
}).prefault({});

/** The whole configuration file. */
export const configSchema = z.strictObject({
  server: serverSchema,
  smtps: listenerSchema("127.0.0.1:8465"),
  submission: listenerSchema("127.0.0.1:8587"),
  tls: tlsSchema,
  auth: authSchema,
  ldap: ldapSchema,
  oauth: oauthSchema,
  spool: spoolSchema,
  relay: relaySchema,
  audit: auditSchema,
  limits: limitsSchema,
  rate_limit: rateLimitSchema,
  quota: quotaSchema,
  state: stateSchema,
  domains: domainsSchema,
  log: logSchema,
  admin: adminSchema,
  autoconfig: autoconfigSchema,
  policy: policySchema,
  dkim: dkimSchema,
});

/** A validated configuration, with every default filled in. */
export type Config = z.infer<typeof configSchema>;

/**
 * The number of session threads `server.workers` asks for: `"auto"` is the
 * number of cores (`navigator.hardwareConcurrency`), at least 1.
 */
export function sessionWorkerCount(
  workers: Config["server"]["workers"],
  cores: number = navigator.hardwareConcurrency,
): number {
  return workers === "auto" ? Math.max(1, Math.floor(cores) || 1) : workers;
}
