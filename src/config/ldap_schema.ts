/**
 * The `[ldap]` configuration section: where the directory is, how the relay
 * finds and checks a user, and (under `[ldap.admin]`) how `relay user ... --ldap`
 * writes entries.
 *
 * ```toml
 * [ldap]
 * url = "ldaps://ldap.example.com"          # or ldap://... with starttls = true
 * ca = "/etc/relay/ldap-ca.pem"
 * bind_dn = "cn=relay,ou=services,dc=example,dc=com"
 * bind_password = "..."
 * mode = "search"                            # or "bind" with bind_dn_template
 *
 * [ldap.domains."company.com"]
 * base_dn = "ou=people,dc=company,dc=com"
 * ```
 *
 * @module
 */
import { z } from "zod";

/** Per-domain overrides, keyed by domain (`[ldap.domains."company.com"]`). */
const ldapDomainSchema = z.strictObject({
  /** Where this domain's users live (searched with scope `sub`). */
  base_dn: z.string().min(1),
});

/** Settings for the admin commands (`relay user add|passwd|remove --ldap`). */
const ldapAdminSchema = z.strictObject({
  /** DN that may add, modify and delete user entries; empty: use `[ldap] bind_dn`. */
  bind_dn: z.string().default(""),
  /** Its password; empty: use `[ldap] bind_password`. */
  bind_password: z.string().default(""),
  /**
   * The entry holding the next free `uidNumber` (changed with an atomic
   * compare-and-swap modify). Empty: `cn=uidNext,<first naming context>`.
   */
  id_counter_dn: z.string().default(""),
  /** Lowest `uidNumber` handed out. */
  uid_number_min: z.number().int().min(1).max(2_147_483_647).default(10000),
  /** `gidNumber` of new users; 0 gives each user a private group id equal to its `uidNumber`. */
  gid_number: z.number().int().min(0).max(2_147_483_647).default(0),
  /** `homeDirectory` of new users; `{local}`, `{domain}` and `{email}` are replaced. */
  home_directory: z.string().min(1).default("/home/{domain}/{local}"),
  /** `loginShell` of new users; empty leaves it out. */
  login_shell: z.string().default("/usr/sbin/nologin"),
  /**
   * How passwords are set. `auto`: the Password Modify extended operation
   * (RFC 3062; the directory hashes by its own policy) when the root DSE lists
   * it, else `user_password`. `password_modify`: always that operation.
   * `user_password`: write `userPassword` hashed with `password_scheme`.
   */
  password_method: z.enum(["auto", "password_modify", "user_password"]).default("auto"),
  /**
   * The hash written by `user_password` (OpenLDAP verifies the SHA-2 schemes
   * only with its `pw-sha2` module; 389 DS has them built in). Every write is
   * checked with a bind as the user and undone when the directory cannot verify it.
   */
  password_scheme: z.enum(["SSHA512", "SSHA256", "SSHA"]).default("SSHA512"),
}).prefault({});

/** The `[ldap]` section. */
export const ldapSchema = z.strictObject({
  /** `ldap://host:port` (plain or with `starttls`) or `ldaps://host:port`. */
  url: z.string().regex(
    /^ldaps?:\/\/[^/?#\s]+\/?$/i,
    'expected "ldap://host:port" or "ldaps://host:port"',
  )
    .default("ldap://127.0.0.1:3389"),
  /** Upgrade `ldap://` connections with StartTLS before anything is sent. */
  starttls: z.boolean().default(false),
  /** PEM file with the CA certificate(s) that signed the directory's certificate; empty: system roots. */
  ca: z.string().default(""),
  /** Service account that searches for users; empty: search anonymously. */
  bind_dn: z.string().default(""),
  /** The service account's password. */
  bind_password: z.string().default(""),
  /**
   * Base for user searches in every domain without its own `[ldap.domains]`
   * entry. Empty: `ou=users,dc=<domain labels>` (company.com → `ou=users,dc=company,dc=com`).
   */
  base_dn: z.string().default(""),
  /** Per-domain search bases. */
  domains: z.record(z.string().min(1), ldapDomainSchema).default({}),
  /**
   * Filter that finds a user; `{email}`, `{local}` and `{domain}` are replaced by
   * RFC 4515-escaped values.
   */
  user_filter: z.string().min(3).default("(&(objectClass=inetOrgPerson)(mail={email}))"),
  /**
   * `search`: the service account finds the user's DN, then the relay binds as
   * the user on another connection. `bind`: bind straight to `bind_dn_template`.
   */
  mode: z.enum(["search", "bind"]).default("search"),
  /**
   * DN to bind as in `bind` mode: `{local}`, `{email}`, `{domain}` (RFC 4514-escaped),
   * `{domain_dc}` (`company,dc=com`) and `{base_dn}` (the domain's base) are replaced.
   */
  bind_dn_template: z.string().min(1).default("uid={local},{base_dn}"),
  /** Milliseconds for a TCP/TLS connect and for each LDAP operation. */
  timeout_ms: z.number().int().min(50).max(120_000).default(5000),
  /** Connections kept open for service-account searches (and as many for user binds). */
  pool_size: z.number().int().min(1).max(64).default(4),
  admin: ldapAdminSchema,
}).prefault({});

/** A validated `[ldap]` section, with every default filled in. */
export type LdapConfig = z.infer<typeof ldapSchema>;
