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
import { readLdapCa } from "./ca.ts";
import { domainDcChain, escapeDnValue, escapeFilterValue, fillTemplate } from "./escape.ts";
import {
  ACCOUNT_STATE_ATTRIBUTES,
  type AccountState,
  accountStateOf,
  attributeValues,
  bindRefusal,
  isAdministrativeLock,
  passwordPolicyControl,
} from "./account_state.ts";
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
  /** What the entry's attributes say about the account (locked, expired, active). */
  state: AccountState;
}

/** Options for {@linkcode LdapAuthenticator}. */
export interface LdapAuthenticatorOptions {
  /** PEM CA certificate(s) for `ldaps://`/StartTLS; overrides reading `config.ca`. */
  caPem?: string;
  /** Logger; default category `["relay", "auth", "ldap"]`. */
  logger?: Logger;
}

const ACTIVE: AccountState = { kind: "active" };

/** Attributes read from a user entry (state attributes are operational: asked for by name). */
const USER_ATTRIBUTES = ["mail", "uid", "cn", "givenName", "sn", ...ACCOUNT_STATE_ATTRIBUTES];

/** Whether an entry is locked (389 DS `nsAccountLock`, OpenLDAP ppolicy `pwdAccountLockedTime`). */
export function isEntryDisabled(entry: Entry): boolean {
  return accountStateOf(entry).kind === "locked";
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

export { readLdapCa };

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
    // An administrative lock needs no bind; a ppolicy lock may have timed out: the bind decides.
    if (user.state.kind !== "active" && isAdministrativeLock(user.state)) {
      return this.#stateFailure(user.state, user.dn);
    }
    const bound = await this.#bindAs(user.dn, password);
    // The entry's own attribute is the more precise reason than a result code.
    if (bound.kind !== "ok" && user.state.kind !== "active") {
      return this.#stateFailure(user.state, user.dn);
    }
    if (bound.kind !== "ok") return this.#bindFailure(bound, user.dn);
    return { ok: true, email: user.email, domain: user.domain, backend: this.name };
  }

  async #verifyByBind(local: string, domain: string, password: string): Promise<AuthResult> {
    const dn = bindDnFor(this.#config, local, domain);
    const outcome = await this.#binds.use(async (client) => {
      const bound = await bindOutcome(client, dn, password);
      if (bound.kind !== "ok") return { bound, entry: undefined };
      // Read our own entry (mail, lock state) while bound as the user; ACLs may forbid it.
      const entry = await client.search(dn, { scope: "base", attributes: USER_ATTRIBUTES })
        .then((r) => r.searchEntries[0], () => undefined);
      return { bound, entry };
    });
    if (outcome.bound.kind !== "ok") {
      if (this.#config.bind_dn === "") return this.#bindFailure(outcome.bound, dn);
      // Without the policy control a ppolicy lock fails like a wrong password, and the control
      // does not say which attribute locked it; the service account can tell.
      const entry = await this.#service.use((client) =>
        client.search(dn, { scope: "base", attributes: USER_ATTRIBUTES })
          .then((r) => r.searchEntries[0], (error) => {
            if (resultCode(error) === 32) return undefined;
            throw error;
          })
      );
      const state = entry ? accountStateOf(entry) : ACTIVE;
      if (state.kind !== "active") return this.#stateFailure(state, dn);
      return this.#bindFailure(outcome.bound, dn);
    }
    const user = outcome.entry
      ? this.#toUser(outcome.entry, local, domain)
      : { dn, email: `${local}@${domain}`.toLowerCase(), domain, state: ACTIVE };
    if (user.state.kind !== "active" && isAdministrativeLock(user.state)) {
      return this.#stateFailure(user.state, dn);
    }
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

  /** Binds as `dn` on a user-bind connection. */
  async #bindAs(dn: string, password: string): Promise<BindOutcome> {
    return await this.#binds.use((client) => bindOutcome(client, dn, password));
  }

  #bindFailure(outcome: Exclude<BindOutcome, { kind: "ok" }>, dn: string): AuthResult {
    return outcome.kind === "invalid"
      ? { ok: false, reason: "invalid_credentials", detail: "wrong password" }
      : this.#stateFailure(outcome, dn);
  }

  /** 535 for the client; the precise account state for the audit trail. */
  #stateFailure(state: Exclude<AccountState, { kind: "active" }>, dn: string): AuthResult {
    const what = state.kind === "expired" ? "password expired" : "account locked";
    return { ok: false, reason: "account_disabled", detail: `${what}: ${state.reason} (${dn})` };
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
      state: accountStateOf(entry),
    };
  }
}

/** What a user bind said: accepted, wrong credentials, or an account state. */
export type BindOutcome =
  | { kind: "ok" }
  | { kind: "invalid" }
  | Exclude<
    AccountState,
    { kind: "active" }
  >;

/** Bind result codes that say something about the user (the rest are about the setup). */
const USER_BIND_CODES: ReadonlySet<number> = new Set([
  19, // constraintViolation: 389 DS lockout after failed binds
  32, // noSuchObject
  34, // invalidDNSyntax
  48, // inappropriateAuthentication
  49, // invalidCredentials (also ppolicy locks and expired passwords)
  53, // unwillingToPerform: 389 DS nsAccountLock ("account inactivated")
]);

/**
 * Binds as `dn` with the password policy control and says what the answer
 * means for the user. Codes that say something about the configuration
 * instead (13 confidentialityRequired: TLS needed; 50 insufficientAccess...)
 * are thrown, so they are logged as errors and answered as temporary failures
 * rather than blamed on the user; so are transport errors.
 */
export async function bindOutcome(
  client: Client,
  dn: string,
  password: string,
): Promise<BindOutcome> {
  const policy = passwordPolicyControl();
  try {
    await client.bind(dn, password, policy);
    return { kind: "ok" };
  } catch (error) {
    const code = resultCode(error);
    if (code === undefined || isTemporaryError(error)) throw error;
    if (!USER_BIND_CODES.has(code)) {
      throw new LdapUnavailableError(`unexpected LDAP bind result ${code}`, { cause: error });
    }
    return bindRefusal(code, policy);
  }
}

/** Reads the CA named in `config.ca` and creates an {@linkcode LdapAuthenticator}. */
export async function createLdapAuthenticator(
  config: LdapConfig,
  options: Omit<LdapAuthenticatorOptions, "caPem"> = {},
): Promise<LdapAuthenticator> {
  return new LdapAuthenticator(config, { ...options, caPem: await readLdapCa(config) });
}
