/**
 * Password authentication against an LDAP directory (OpenLDAP, 389 DS,
 * anything RFC 4511): search-then-bind with a service account, or a direct
 * bind to a DN template. The directory checks the password; the relay never
 * sees a hash and never logs a password.
 *
 * @module
 */
import { normalizeDomain, parseEmail } from "../../mail/mod.ts";
import { getLogger, type Logger } from "@logtape/logtape";
import { type Client, type Entry, FilterParser } from "ldapts";
import type { AuthResult, PasswordAuthenticator } from "../authenticator.ts";
import type { LdapConfig } from "../../config/ldap_schema.ts";
import { domainDcChain, escapeDnValue, escapeFilterValue, fillTemplate } from "./escape.ts";
import {
  describe,
  isTemporaryError,
  type LdapEndpoint,
  LdapPool,
  LdapUnavailableError,
  openClient,
  resultCode,
} from "./connection.ts";

/** A user entry as the directory describes it. */
export interface LdapUser {
  /** The entry's DN. */
  dn: string;
  /** Canonical (lower-cased) email address: the identity. */
  email: string;
  /** Its domain, lower-cased ASCII: the tenant. */
  domain: string;
  /** `uid`, when the entry has one. */
  uid?: string;
  /** `cn` (display name), when present. */
  displayName?: string;
  /** `givenName`, when present. */
  givenName?: string;
  /** `sn`, when present. */
  surname?: string;
  /** Locked: 389 DS `nsAccountLock: true` or OpenLDAP `pwdAccountLockedTime` present. */
  disabled: boolean;
}

/** Options for {@linkcode LdapAuthenticator}. */
export interface LdapAuthenticatorOptions {
  /** PEM CA certificate(s) for `ldaps://`/StartTLS; overrides reading `config.ca`. */
  caPem?: string;
  /** Logger; default category `["relay", "auth", "ldap"]`. */
  logger?: Logger;
}

/** Attributes read from a user entry (lock attributes are operational: ask by name). */
const USER_ATTRIBUTES = [
  "mail",
  "uid",
  "cn",
  "givenName",
  "sn",
  "nsAccountLock",
  "pwdAccountLockedTime",
];

/** Values of an attribute, whatever case the server spelled its name in. */
export function attributeValues(entry: Entry, name: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined || key === "dn") return [];
  const value = entry[key];
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => typeof v === "string" ? v : v.toString("utf8"));
}

/** Whether an entry is locked (389 DS `nsAccountLock`, OpenLDAP ppolicy `pwdAccountLockedTime`). */
export function isEntryDisabled(entry: Entry): boolean {
  const nsLock = attributeValues(entry, "nsAccountLock");
  if (nsLock.some((v) => v.trim().toLowerCase() === "true")) return true;
  return attributeValues(entry, "pwdAccountLockedTime").length > 0;
}

/**
 * The search base for a domain: its `[ldap.domains]` entry, else `base_dn`,
 * else `ou=users,dc=<labels>`.
 */
export function baseDnFor(config: LdapConfig, domain: string): string {
  for (const [name, settings] of Object.entries(config.domains)) {
    if (normalizeDomain(name) === domain) return settings.base_dn;
  }
  if (config.base_dn !== "") return config.base_dn;
  return `ou=users,dc=${domainDcChain(domain)}`;
}

/** The user filter for an address, values escaped per RFC 4515. */
export function userFilterFor(config: LdapConfig, local: string, domain: string): string {
  return fillTemplate(config.user_filter, { email: `${local}@${domain}`, local, domain }, {
    escape: escapeFilterValue,
  });
}

/** The bind DN for an address in `bind` mode, values escaped per RFC 4514. */
export function bindDnFor(config: LdapConfig, local: string, domain: string): string {
  return fillTemplate(config.bind_dn_template, { email: `${local}@${domain}`, local, domain }, {
    escape: escapeDnValue,
    raw: { domain_dc: domainDcChain(domain), base_dn: baseDnFor(config, domain) },
  });
}

/** The endpoint described by a config (CA already read). */
export function endpointFor(config: LdapConfig, caPem?: string): LdapEndpoint {
  return { url: config.url, starttls: config.starttls, caPem, timeoutMs: config.timeout_ms };
}

/** Reads `config.ca` (when set) for {@linkcode LdapAuthenticatorOptions.caPem}. */
export async function readLdapCa(config: LdapConfig): Promise<string | undefined> {
  return config.ca === "" ? undefined : await Deno.readTextFile(config.ca);
}

/**
 * Checks passwords against an LDAP directory.
 *
 * @example
 * ```ts ignore
 * const ldap = await createLdapAuthenticator(config.ldap);
 * const result = await ldap.verifyPassword("john.doe@example.com", password);
 * if (!result.ok && result.reason === "temporary_failure") {
 *   // 454 4.7.0, try again later
 * }
 * await ldap.close();
 * ```
 */
export class LdapAuthenticator implements PasswordAuthenticator {
  /** Backend name for logs and the audit trail. */
  readonly name = "ldap";
  #config: LdapConfig;
  #log: Logger;
  #service: LdapPool;
  #binds: LdapPool;
  #dummyRdn = `cn=relay-no-such-user-${crypto.randomUUID()}`;

  /**
   * Creates the authenticator; no connection is opened until the first use.
   * Throws when `user_filter` or `bind_dn_template` cannot work (an unknown
   * placeholder, a filter that does not parse), so a bad config stops the start.
   */
  constructor(config: LdapConfig, options: LdapAuthenticatorOptions = {}) {
    try {
      const filter = userFilterFor(config, "probe", "example.com");
      // ldapts forgives a missing ")" at the end; a server may not.
      let depth = 0;
      for (const c of filter) {
        depth += c === "(" ? 1 : c === ")" ? -1 : 0;
        if (depth < 0) break;
      }
      if (depth !== 0) throw new Error(`unbalanced parentheses in ${config.user_filter}`);
      FilterParser.parseString(filter);
    } catch (error) {
      throw new Error(`[ldap] user_filter: ${describe(error)}`);
    }
    try {
      bindDnFor(config, "probe", "example.com");
    } catch (error) {
      throw new Error(`[ldap] bind_dn_template: ${describe(error)}`);
    }
    this.#config = config;
    this.#log = options.logger ?? getLogger(["relay", "auth", "ldap"]);
    const endpoint = endpointFor(config, options.caPem);
    const serviceBind = config.bind_dn === ""
      ? undefined
      : { dn: config.bind_dn, password: config.bind_password };
    this.#service = new LdapPool({
      size: config.pool_size,
      open: () =>
        openClient(endpoint, serviceBind).catch((error) => {
          if (resultCode(error) === undefined) throw error;
          // A configuration problem, not the user's: say so in the log, answer 454.
          throw new LdapUnavailableError(`service account bind failed: ${describe(error)}`);
        }),
      // An anonymous pool has nothing to lose on reconnect; a bound one must stay bound.
      usable: (client) => serviceBind === undefined || client.isBound,
    });
    this.#binds = new LdapPool({ size: config.pool_size, open: () => openClient(endpoint) });
  }

  /** Checks `password` for the user `username` (an email address). */
  async verifyPassword(username: string, password: string): Promise<AuthResult> {
    const address = parseEmail(username.trim());
    if (address === null) {
      return { ok: false, reason: "invalid_credentials", detail: "not an email address" };
    }
    if (password === "") {
      // RFC 4513 5.1.2: a bind with a DN and no password is an anonymous bind that "succeeds".
      return { ok: false, reason: "invalid_credentials", detail: "empty password" };
    }
    try {
      return this.#config.mode === "bind"
        ? await this.#verifyByBind(address.local, address.domain, password)
        : await this.#verifyBySearch(address.local, address.domain, password);
    } catch (error) {
      if (isTemporaryError(error)) {
        this.#log.warn("LDAP unavailable while verifying {user}: {error}", {
          user: address.canonical,
          error: describe(error),
        });
        return { ok: false, reason: "temporary_failure", detail: describe(error) };
      }
      this.#log.error("LDAP refused a request while verifying {user}: {error}", {
        user: address.canonical,
        error: describe(error),
      });
      return { ok: false, reason: "temporary_failure", detail: describe(error) };
    }
  }

  /**
   * Finds a user by email address with the service account (for the OAuth
   * login page and the admin commands). Resolves `null` when there is no such
   * user or the address is malformed; throws `LdapUnavailableError` when the
   * directory cannot answer.
   */
  async lookupUser(email: string): Promise<LdapUser | null> {
    const address = parseEmail(email.trim());
    if (address === null) return null;
    try {
      const entries = await this.#search(address.local, address.domain);
      if (entries.length !== 1) return null;
      return this.#toUser(entries[0], address.local, address.domain);
    } catch (error) {
      if (error instanceof LdapUnavailableError) throw error;
      throw new LdapUnavailableError(`LDAP lookup failed: ${describe(error)}`, { cause: error });
    }
  }

  /** Closes every pooled connection. */
  async close(): Promise<void> {
    await Promise.all([this.#service.close(), this.#binds.close()]);
  }

  async #verifyBySearch(local: string, domain: string, password: string): Promise<AuthResult> {
    const entries = await this.#search(local, domain);
    if (entries.length !== 1) {
      // Spend a bind round trip anyway so an unknown user answers about as fast as a wrong password.
      await this.#bindAs(`${this.#dummyRdn},${baseDnFor(this.#config, domain)}`, password);
      if (entries.length > 1) {
        this.#log.warn("LDAP filter matched {count} entries for {user}; refusing", {
          count: entries.length,
          user: `${local}@${domain}`,
        });
      }
      return {
        ok: false,
        reason: "invalid_credentials",
        detail: entries.length === 0 ? "unknown user" : "ambiguous user",
      };
    }
    const user = this.#toUser(entries[0], local, domain);
    if (user.disabled) return { ok: false, reason: "account_disabled", detail: user.dn };
    const bound = await this.#bindAs(user.dn, password);
    if (bound !== "ok") return this.#bindFailure(bound, user.dn);
    return { ok: true, email: user.email, domain: user.domain, backend: this.name };
  }

  async #verifyByBind(local: string, domain: string, password: string): Promise<AuthResult> {
    const dn = bindDnFor(this.#config, local, domain);
    const outcome = await this.#binds.use(async (client) => {
      const code = await bindCode(client, dn, password);
      if (code !== 0) return { code, entry: undefined };
      // Read our own entry (mail, lock state) while bound as the user; ACLs may forbid it.
      const entry = await client.search(dn, { scope: "base", attributes: USER_ATTRIBUTES })
        .then((r) => r.searchEntries[0], () => undefined);
      return { code, entry };
    });
    if (outcome.code !== 0) {
      const failed = this.#bindFailure(classifyBind(outcome.code) as "invalid" | "disabled", dn);
      if (failed.ok || failed.reason !== "invalid_credentials" || this.#config.bind_dn === "") {
        return failed;
      }
      // ppolicy-locked accounts fail like a wrong password; the service account can tell.
      const entry = await this.#service.use((client) =>
        client.search(dn, { scope: "base", attributes: USER_ATTRIBUTES })
          .then((r) => r.searchEntries[0], (error) => {
            if (resultCode(error) === 32) return undefined;
            throw error;
          })
      );
      if (entry && isEntryDisabled(entry)) {
        return { ok: false, reason: "account_disabled", detail: dn };
      }
      return failed;
    }
    const user = outcome.entry
      ? this.#toUser(outcome.entry, local, domain)
      : { dn, email: `${local}@${domain}`.toLowerCase(), domain, disabled: false };
    if (user.disabled) return { ok: false, reason: "account_disabled", detail: dn };
    return { ok: true, email: user.email, domain: user.domain, backend: this.name };
  }

  /** Entries matching the user filter under the domain's base (at most 2 fetched). */
  async #search(local: string, domain: string): Promise<Entry[]> {
    const base = baseDnFor(this.#config, domain);
    const filter = userFilterFor(this.#config, local, domain);
    return await this.#service.use(async (client) => {
      try {
        const result = await client.search(base, {
          scope: "sub",
          filter,
          attributes: USER_ATTRIBUTES,
          sizeLimit: 2,
        });
        return result.searchEntries;
      } catch (error) {
        // No such base: nobody of this domain lives here.
        if (resultCode(error) === 32) return [];
        throw error;
      }
    });
  }

  /** Binds as `dn` on a user-bind connection: "ok", "invalid" or "disabled". */
  async #bindAs(dn: string, password: string): Promise<"ok" | "invalid" | "disabled"> {
    return classifyBind(await this.#binds.use((client) => bindCode(client, dn, password)));
  }

  #bindFailure(outcome: "invalid" | "disabled", dn: string): AuthResult {
    return outcome === "invalid"
      ? { ok: false, reason: "invalid_credentials", detail: "wrong password" }
      : { ok: false, reason: "account_disabled", detail: dn };
  }

  #toUser(entry: Entry, local: string, domain: string): LdapUser {
    const wanted = `${local}@${domain}`.toLowerCase();
    const mails = attributeValues(entry, "mail").map((m) => parseEmail(m.trim())).filter((m) =>
      m !== null
    );
    // Prefer the address the user typed; else the entry's first mail; else the typed one.
    const chosen = mails.find((m) => m.canonical === wanted) ?? mails[0] ??
      { canonical: wanted, domain };
    const first = (name: string) => attributeValues(entry, name)[0];
    return {
      dn: entry.dn,
      email: chosen.canonical,
      domain: chosen.domain,
      uid: first("uid"),
      displayName: first("cn"),
      givenName: first("givenName"),
      surname: first("sn"),
      disabled: isEntryDisabled(entry),
    };
  }
}

/**
 * What a bind's result code says about the user. Codes that say something
 * about the configuration instead (13 confidentialityRequired: TLS needed;
 * 50 insufficientAccess...) are thrown, so they are logged as errors and
 * answered as temporary failures rather than blamed on the user.
 */
function classifyBind(code: number): "ok" | "invalid" | "disabled" {
  switch (code) {
    case 0:
      return "ok";
    case 32: // noSuchObject
    case 34: // invalidDNSyntax
    case 48: // inappropriateAuthentication
    case 49: // invalidCredentials (also OpenLDAP ppolicy lockouts)
      return "invalid";
    case 19: // constraintViolation: 389 DS password-policy lockout
    case 53: // unwillingToPerform: 389 DS nsAccountLock ("account inactivated")
      return "disabled";
    default:
      throw new LdapUnavailableError(`unexpected LDAP bind result ${code}`);
  }
}

/**
 * Binds and returns the LDAP result code: 0 for success, 49 invalid
 * credentials, 53/19 (389 DS lock, ppolicy) and so on. Transport errors and
 * "server unwell" codes are thrown.
 */
async function bindCode(client: Client, dn: string, password: string): Promise<number> {
  try {
    await client.bind(dn, password);
    return 0;
  } catch (error) {
    const code = resultCode(error);
    if (code === undefined || isTemporaryError(error)) throw error;
    return code;
  }
}

/** Reads the CA named in `config.ca` and creates an {@linkcode LdapAuthenticator}. */
export async function createLdapAuthenticator(
  config: LdapConfig,
  options: Omit<LdapAuthenticatorOptions, "caPem"> = {},
): Promise<LdapAuthenticator> {
  return new LdapAuthenticator(config, { ...options, caPem: await readLdapCa(config) });
}
