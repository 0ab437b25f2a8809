/**
 * The `[admin]` section (the operators' HTTP listener: `/metrics`,
 * `/healthz/live`, `/healthz/ready`) and the `[autoconfig]` section (mail
 * client set-up documents served on the OAuth server's public listener).
 *
 * ```toml
 * [admin]
 * listen = "127.0.0.1:9465"
 * token_file = "config/admin.token"     # optional: /metrics then needs "Authorization: Bearer <token>"
 *
 * [autoconfig]
 * domains = ["example.org"]              # besides the domains of the users files and [ldap.domains]
 * imap_hostname = "imap.example.com"     # the mailbox server clients also need (optional)
 * ```
 *
 * @module
 */
import { z } from "zod";
import { listenAddress } from "./listen.ts";

/** The default admin listener: loopback only. */
export const DEFAULT_ADMIN_LISTEN = "127.0.0.1:9465";

/** The `[admin]` section. */
export const adminSchema = z.strictObject({
  /** Serve `/metrics` and the health endpoints. */
  enabled: z.boolean().default(true),
  /** Where (keep it on loopback or a private network; port 0 picks a free one). */
  listen: listenAddress(DEFAULT_ADMIN_LISTEN).default(DEFAULT_ADMIN_LISTEN),
  /**
   * A file holding a bearer token (one line, at least 16 characters) that
   * `/metrics` then requires; empty: no token. The health endpoints stay open.
   */
  token_file: z.string().default(""),
}).prefault({});

const port = z.number().int().min(0).max(65535);

/** The `[autoconfig]` section. */
export const autoconfigSchema = z.strictObject({
  /** Serve Thunderbird autoconfig, Outlook autodiscover and Apple profiles. */
  enabled: z.boolean().default(true),
  /** Domains served besides those with a users file or an `[ldap.domains]` entry. */
  domains: z.array(z.string().min(1)).default([]),
  /** The SMTPS port clients are told (0: the `[smtps]` listener's port). */
  smtps_port: port.default(0),
  /** The submission (STARTTLS) port clients are told (0: the `[submission]` listener's port). */
  submission_port: port.default(0),
  /** The IMAP server users read their mail on, listed as the incoming server; empty: none. */
  imap_hostname: z.string().default(""),
  /** Its port (implicit TLS). */
  imap_port: port.min(1).default(993),
}).prefault({});

/** The validated `[admin]` section. */
export type AdminConfig = z.infer<typeof adminSchema>;
/** The validated `[autoconfig]` section. */
export type AutoconfigConfig = z.infer<typeof autoconfigSchema>;
