/**
 * Writing user entries (the admin side of `relay user ... --ldap`): add with
 * safely allocated POSIX ids, change a password, remove. Entries follow the
 * layout the relay searches by default: `uid=<local>,ou=users,dc=<labels>`,
 * objectClasses inetOrgPerson + posixAccount. Passwords are set with the
 * Password Modify extended operation when the directory offers it (it hashes
 * them by its own policy), else written as a salted hash made here; either
 * way one bind as the user then proves the password works (see
 * `password_write.ts`).
 *
 * Id allocation: one counter entry (`[ldap.admin] id_counter_dn`) holds the
 * next free `uidNumber`; it is taken with a single modify that deletes the old
 * value and adds the next (an LDAP compare-and-swap: the server applies both
 * or neither, and refuses with noSuchAttribute when another admin got there
 * first, so we re-read and retry). The counter is created from the highest
 * `uidNumber` in the directory the first time; an id found in use anyway
 * (added by other tools) is skipped.
 *
 * @module
 */
import { parseEmail } from "../../mail/mod.ts";
import { Attribute, Change, type Client, type Entry } from "ldapts";
import type { LdapConfig } from "../../config/ldap_schema.ts";
import {
  ACCOUNT_STATE_ATTRIBUTES,
  type AccountState,
  accountStateOf,
  attributeValues,
  parseGeneralizedTime,
} from "./account_state.ts";
import {
  baseDnFor,
  bindDnFor,
  type BindOutcome,
  endpointFor,
  userFilterFor,
} from "./authenticator.ts";
import { describe, discardClient, openClient, resultCode } from "./connection.ts";
import { escapeDnValue, fillTemplate } from "./escape.ts";
import { hashSaltedSha } from "./password_hash.ts";
import {
  bindAsUser,
  choosePasswordMethod,
  likelyCause,
  type PasswordMethod,
  writePassword,
} from "./password_write.ts";

/** An admin request that cannot be carried out (exists, not found, no suffix...). */
export class LdapAdminError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LdapAdminError";
  }
}

/** A user to create. */
export interface NewLdapUser {
  /** The address (`mail`); its local part becomes `uid`. */
  email: string;
  /** `givenName`. */
  givenName: string;
  /** `sn`. */
  surname: string;
  /** `cn`; default "givenName surname". */
  displayName?: string;
  /** The password, hashed before it leaves this process. */
  password: string;
  /** Create the domain's suffix entry and `ou=users` when missing. */
  createOu?: boolean;
}

/** What `addUser` created. */
export interface AddedLdapUser {
  /** DN of the new entry. */
  dn: string;
  /** Canonical address. */
  email: string;
  /** Allocated `uidNumber`. */
  uidNumber: number;
  /** `gidNumber`. */
  gidNumber: number;
  /** Entries created above the user by `createOu`. */
  created: string[];
  /** How the password was written. */
  passwordMethod: PasswordMethod;
}

/** What `setPassword` did. */
export interface ChangedLdapPassword {
  /** DN of the entry. */
  dn: string;
  /** How the password was written. */
  passwordMethod: PasswordMethod;
}

/** A user entry as an admin sees it. */
export interface LdapUserEntry {
  /** DN. */
  dn: string;
  /** `mail` values. */
  mail: string[];
  /** `uidNumber`, if any. */
  uidNumber?: number;
  /** Locked. */
  disabled: boolean;
  /** Locked, expired or active, with the attribute that says so. */
  state: AccountState;
  /** `pwdChangedTime` (OpenLDAP ppolicy), if the directory keeps it. */
  passwordChanged?: Date;
}

/**
 * The password was written but a bind as the user failed: the message names
 * the likely cause; `rolledBack` says whether the write was undone.
 */
export class LdapPasswordVerificationError extends LdapAdminError {
  /** Creates the error. */
  constructor(message: string, readonly rolledBack: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LdapPasswordVerificationError";
  }
}

/** Options for {@linkcode LdapUserAdmin}. */
export interface LdapUserAdminOptions {
  /** PEM CA for TLS; default: none (system roots). */
  caPem?: string;
  /** Admin DN; default `[ldap.admin] bind_dn`, else `[ldap] bind_dn`. */
  bindDn?: string;
  /** Its password; default `[ldap.admin] bind_password`, else `[ldap] bind_password`. */
  bindPassword?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Splits a DN into RDN strings at unescaped commas (values stay escaped). */
export function splitDn(dn: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i];
    if (c === "\\" && i + 1 < dn.length) {
      current += c + dn[++i];
    } else if (c === ",") {
      parts.push(current.trim());
      current = "";
    } else {
      current += c;
    }
  }
  if (current.trim() !== "") parts.push(current.trim());
  return parts;
}

function unescapeDnValue(value: string): string {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < value.length; i++) {
    if (value[i] === "\\" && /^[0-9a-fA-F]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (value[i] === "\\" && i + 1 < value.length) {
      bytes.push(...encoder.encode(value[++i]));
    } else {
      bytes.push(...encoder.encode(value[i]));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** A failed password write, with the fix when the directory wants TLS first (389 DS does). */
function writeFailure(error: unknown): string {
  return resultCode(error) === 13
    ? `${describe(error)}: the directory accepts passwords only over TLS; ` +
      "set [ldap] starttls = true or an ldaps:// url"
    : describe(error);
}

/** Lower-cased DN without spaces around separators, for comparisons. */
function normalizeDn(dn: string): string {
  return splitDn(dn).map((rdn) => {
    const eq = rdn.indexOf("=");
    return `${rdn.slice(0, eq).trim().toLowerCase()}=${rdn.slice(eq + 1).trim().toLowerCase()}`;
  }).join(",");
}

/**
 * Adds, changes and removes user entries with an administrative bind.
 * One connection, opened on first use; `close()` it.
 */
export class LdapUserAdmin {
  #config: LdapConfig;
  #options: LdapUserAdminOptions;
  #client: Client | undefined;

  /** Creates the admin; nothing is opened yet. */
  constructor(config: LdapConfig, options: LdapUserAdminOptions = {}) {
    this.#config = config;
    this.#options = options;
  }

  /** Creates a user entry; throws `LdapAdminError` when it exists or its tree is missing. */
  async addUser(user: NewLdapUser): Promise<AddedLdapUser> {
    const address = this.#address(user.email);
    const local = address.local.toLowerCase();
    const client = await this.#connect();
    const base = baseDnFor(this.#config, address.domain);
    const created: string[] = [];
    const existing = await this.#findEntries(client, address.local, address.domain);
    if (existing === null) {
      if (!user.createOu) {
        throw new LdapAdminError(`${base} does not exist (use --create-ou to create it)`);
      }
      created.push(...await this.#createChain(client, base, address.domain));
    } else if (existing.length > 0) {
      throw new LdapAdminError(`${address.canonical} already exists: ${existing[0].dn}`);
    }
    const dn = this.#config.mode === "bind"
      ? bindDnFor(this.#config, local, address.domain)
      : `uid=${escapeDnValue(local)},${base}`;
    const uidNumber = await this.#allocateUidNumber(client);
    const gidNumber = this.#config.admin.gid_number || uidNumber;
    const values = { local, domain: address.domain, email: address.canonical };
    const attributes: Record<string, string | string[]> = {
      objectClass: ["top", "inetOrgPerson", "posixAccount"],
      uid: local,
      cn: user.displayName ?? `${user.givenName} ${user.surname}`.trim(),
      givenName: user.givenName,
      sn: user.surname,
      mail: address.canonical,
      uidNumber: String(uidNumber),
      gidNumber: String(gidNumber),
      homeDirectory: fillTemplate(this.#config.admin.home_directory, values, {
        escape: (v) => v,
      }),
    };
    const method = await choosePasswordMethod(client, this.#config);
    if (method === "user_password") {
      attributes.userPassword = hashSaltedSha(this.#config.admin.password_scheme, user.password);
    }
    if (this.#config.admin.login_shell !== "") {
      attributes.loginShell = this.#config.admin.login_shell;
    }
    try {
      await client.add(dn, attributes);
    } catch (error) {
      if (resultCode(error) === 68) throw new LdapAdminError(`${dn} already exists`);
      throw new LdapAdminError(`cannot add ${dn}: ${describe(error)}`, { cause: error });
    }
    // An entry whose password cannot be used is not left behind.
    const undo = async () => {
      await client.del(dn);
      return true;
    };
    if (method === "password_modify") {
      try {
        await writePassword(client, this.#config, dn, user.password, method);
      } catch (error) {
        await undo().catch(() => false);
        throw new LdapAdminError(
          `cannot set the password of ${dn} (Password Modify): ${writeFailure(error)}; ` +
            `${dn} removed`,
          { cause: error },
        );
      }
    }
    await this.#verify(dn, user.password, method, undo);
    return { dn, email: address.canonical, uidNumber, gidNumber, created, passwordMethod: method };
  }

  /**
   * Replaces a user's password: Password Modify when the directory offers it,
   * else a `userPassword` hashed here. Then binds as the user to prove it;
   * a hash the directory cannot verify is replaced by the previous value again.
   */
  async setPassword(email: string, password: string): Promise<ChangedLdapPassword> {
    const entry = await this.#requireUser(email);
    const client = await this.#connect();
    const method = await choosePasswordMethod(client, this.#config);
    // The values to restore if the directory cannot verify the new hash (admins can read them).
    const previous = method === "user_password"
      ? await client.search(entry.dn, { scope: "base", attributes: ["userPassword"] })
        .then((r) => r.searchEntries[0], () => undefined)
      : undefined;
    try {
      await writePassword(client, this.#config, entry.dn, password, method);
    } catch (error) {
      throw new LdapAdminError(
        `cannot change the password of ${entry.dn}: ${writeFailure(error)}`,
        { cause: error },
      );
    }
    const old = previous === undefined ? [] : attributeValues(previous, "userPassword");
    const restore = old.length === 0 ? undefined : async () => {
      await client.modify(
        entry.dn,
        new Change({
          operation: "replace",
          modification: new Attribute({ type: "userPassword", values: old }),
        }),
      );
      return true;
    };
    await this.#verify(entry.dn, password, method, restore);
    return { dn: entry.dn, passwordMethod: method };
  }

  /**
   * Binds once as `dn`; when that fails, throws {@linkcode LdapPasswordVerificationError}
   * naming the likely cause. `undo` runs when the directory could not verify a
   * hash written here (the only failure a rewrite cannot fix by itself).
   */
  async #verify(
    dn: string,
    password: string,
    method: PasswordMethod,
    undo?: () => Promise<boolean>,
  ): Promise<void> {
    let outcome: BindOutcome | undefined;
    let error: unknown;
    try {
      outcome = await bindAsUser(endpointFor(this.#config, this.#options.caPem), dn, password);
    } catch (caught) {
      error = caught;
    }
    if (outcome?.kind === "ok") return;
    if (outcome?.kind === "locked" || outcome?.kind === "expired") {
      // The entry's own attribute names the state better than the bind's answer.
      const { searchEntries } = await (await this.#connect()).search(dn, {
        scope: "base",
        attributes: [...ACCOUNT_STATE_ATTRIBUTES],
      });
      const state = searchEntries[0] ? accountStateOf(searchEntries[0]) : outcome;
      if (state.kind !== "active") outcome = state;
    }
    const cause = likelyCause(this.#config, method, outcome, error);
    const unverifiable = method === "user_password" && outcome?.kind === "invalid";
    const rolledBack = unverifiable && undo !== undefined && await undo().catch(() => false);
    const what = rolledBack ? "the change was undone" : "the password was written";
    throw new LdapPasswordVerificationError(
      `a bind as ${dn} with the new password failed (${what}); likely cause: ${cause}`,
      rolledBack,
      { cause: error },
    );
  }

  /** Deletes a user's entry; resolves its DN. */
  async removeUser(email: string): Promise<string> {
    const entry = await this.#requireUser(email);
    const client = await this.#connect();
    try {
      await client.del(entry.dn);
    } catch (error) {
      throw new LdapAdminError(`cannot remove ${entry.dn}: ${describe(error)}`, { cause: error });
    }
    return entry.dn;
  }

  /** Finds a user's entry with the admin bind; `null` when there is none. */
  async findUser(email: string): Promise<LdapUserEntry | null> {
    const address = this.#address(email);
    const entries = await this.#findEntries(await this.#connect(), address.local, address.domain);
    if (entries === null || entries.length === 0) return null;
    if (entries.length > 1) {
      throw new LdapAdminError(`${address.canonical} matches ${entries.length} entries`);
    }
    const entry = entries[0];
    const uidNumber = attributeValues(entry, "uidNumber")[0];
    const changed = attributeValues(entry, "pwdChangedTime")[0];
    const passwordChanged = changed === undefined ? undefined : parseGeneralizedTime(changed);
    let state = accountStateOf(entry);
    if (state.kind === "active" && passwordChanged !== undefined) {
      state = await this.#ppolicyExpiry(entry, passwordChanged) ?? state;
    }
    return {
      dn: entry.dn,
      mail: attributeValues(entry, "mail"),
      uidNumber: uidNumber === undefined ? undefined : Number(uidNumber),
      disabled: state.kind === "locked",
      state,
      passwordChanged,
    };
  }

  /**
   * OpenLDAP ppolicy keeps no expiry time on the entry: `pwdChangedTime` plus
   * the `pwdMaxAge` of the entry's policy (`pwdPolicySubentry`) says it.
   * Undefined when the entry names no policy or the policy has no maximum age.
   */
  async #ppolicyExpiry(
    entry: Entry,
    changed: Date,
  ): Promise<AccountState | undefined> {
    const policyDn = attributeValues(entry, "pwdPolicySubentry")[0];
    if (policyDn === undefined) return undefined;
    const policy = await (await this.#connect()).search(policyDn, {
      scope: "base",
      attributes: ["pwdMaxAge"],
    }).then((r) => r.searchEntries[0], () => undefined);
    const maxAge = Number(policy ? attributeValues(policy, "pwdMaxAge")[0] : 0);
    if (!(maxAge > 0)) return undefined;
    const expiry = new Date(changed.getTime() + maxAge * 1000);
    if (expiry.getTime() > Date.now()) return undefined;
    return {
      kind: "expired",
      attribute: "pwdChangedTime",
      reason: `the password is older than pwdMaxAge ${maxAge} s of ${policyDn} ` +
        `(expired ${expiry.toISOString()})`,
    };
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await discardClient(client);
  }

  #address(email: string) {
    const address = parseEmail(email.trim());
    if (address === null) throw new LdapAdminError(`not a valid email address: ${email}`);
    return address;
  }

  async #connect(): Promise<Client> {
    if (this.#client?.isBound) return this.#client;
    if (this.#client) await discardClient(this.#client);
    this.#client = undefined;
    const dn = this.#options.bindDn ?? (this.#config.admin.bind_dn || this.#config.bind_dn);
    const password = this.#options.bindPassword ??
      (this.#config.admin.bind_dn ? this.#config.admin.bind_password : this.#config.bind_password);
    if (dn === "") {
      throw new LdapAdminError("no admin DN: set [ldap.admin] bind_dn or pass --bind-dn");
    }
    try {
      this.#client = await openClient(endpointFor(this.#config, this.#options.caPem), {
        dn,
        password,
      });
    } catch (error) {
      const why = resultCode(error) === 49 ? "invalid admin DN or password" : describe(error);
      throw new LdapAdminError(`cannot bind to ${this.#config.url} as ${dn}: ${why}`, {
        cause: error,
      });
    }
    return this.#client;
  }

  async #requireUser(email: string): Promise<LdapUserEntry> {
    const entry = await this.findUser(email);
    if (entry === null) throw new LdapAdminError(`no such user: ${email.trim().toLowerCase()}`);
    return entry;
  }

  /** Entries matching the user filter; `null` when the domain's base does not exist. */
  async #findEntries(client: Client, local: string, domain: string) {
    try {
      const { searchEntries } = await client.search(baseDnFor(this.#config, domain), {
        scope: "sub",
        filter: userFilterFor(this.#config, local, domain),
        attributes: [
          "mail",
          "uidNumber",
          ...ACCOUNT_STATE_ATTRIBUTES,
          "pwdChangedTime",
          "pwdPolicySubentry",
        ],
        sizeLimit: 5,
      });
      return searchEntries;
    } catch (error) {
      if (resultCode(error) === 32) return null;
      throw new LdapAdminError(`cannot search for ${local}@${domain}: ${describe(error)}`, {
        cause: error,
      });
    }
  }

  async #exists(client: Client, dn: string): Promise<boolean> {
    try {
      await client.search(dn, { scope: "base", attributes: ["1.1"] });
      return true;
    } catch (error) {
      if (resultCode(error) === 32) return false;
      throw error;
    }
  }

  async #namingContexts(client: Client): Promise<string[]> {
    const { searchEntries } = await client.search("", {
      scope: "base",
      filter: "(objectClass=*)",
      attributes: ["namingContexts"],
    });
    return searchEntries.length === 0 ? [] : attributeValues(searchEntries[0], "namingContexts");
  }

  /** Creates `base` and the entries between it and its naming context, top down. */
  async #createChain(client: Client, base: string, domain: string): Promise<string[]> {
    const target = normalizeDn(base);
    const context = (await this.#namingContexts(client))
      .filter((nc) => target === normalizeDn(nc) || target.endsWith(`,${normalizeDn(nc)}`))
      .sort((a, b) => b.length - a.length)[0];
    if (context === undefined) {
      throw new LdapAdminError(`the directory holds no database for ${base}`);
    }
    const rdns = splitDn(base);
    const depth = splitDn(context).length;
    const created: string[] = [];
    for (let n = depth; n <= rdns.length; n++) {
      const dn = rdns.slice(rdns.length - n).join(",");
      if (await this.#exists(client, dn)) continue;
      const rdn = rdns[rdns.length - n];
      const eq = rdn.indexOf("=");
      const type = rdn.slice(0, eq).trim().toLowerCase();
      const value = unescapeDnValue(rdn.slice(eq + 1).trim());
      let attributes: Record<string, string | string[]>;
      if (type === "dc") {
        // The suffix entry: dc=company,dc=com is organization "company.com".
        const labels = rdns.slice(rdns.length - n).map((r) => unescapeDnValue(r.slice(3)));
        const isDomain = rdns.slice(rdns.length - n).every((r) => /^dc=/i.test(r));
        attributes = {
          objectClass: ["top", "dcObject", "organization"],
          dc: value,
          o: isDomain ? labels.join(".") : domain,
        };
      } else if (type === "ou") {
        attributes = { objectClass: ["top", "organizationalUnit"], ou: value };
      } else if (type === "o") {
        attributes = { objectClass: ["top", "organization"], o: value };
      } else {
        throw new LdapAdminError(`cannot create ${dn}: only dc=, ou= and o= entries are created`);
      }
      try {
        await client.add(dn, attributes);
        created.push(dn);
      } catch (error) {
        if (resultCode(error) === 68) continue; // created meanwhile by someone else
        throw new LdapAdminError(`cannot create ${dn}: ${describe(error)}`, { cause: error });
      }
    }
    return created;
  }

  /** Highest `uidNumber` in every naming context (0 when none). */
  async #maxUidNumber(client: Client, contexts: string[]): Promise<number> {
    let max = 0;
    for (const context of contexts) {
      try {
        const { searchEntries } = await client.search(context, {
          scope: "sub",
          filter: "(uidNumber=*)",
          attributes: ["uidNumber"],
          paged: { pageSize: 500 },
        });
        for (const entry of searchEntries) {
          for (const v of attributeValues(entry, "uidNumber")) max = Math.max(max, Number(v) || 0);
        }
      } catch (error) {
        if (resultCode(error) !== 32) throw error;
      }
    }
    return max;
  }

  async #uidNumberInUse(client: Client, contexts: string[], uidNumber: number): Promise<boolean> {
    for (const context of contexts) {
      try {
        const { searchEntries } = await client.search(context, {
          scope: "sub",
          filter: `(uidNumber=${uidNumber})`,
          attributes: ["1.1"],
          sizeLimit: 1,
        });
        if (searchEntries.length > 0) return true;
      } catch (error) {
        if (resultCode(error) !== 32) throw error;
      }
    }
    return false;
  }

  /** Takes the next `uidNumber` from the counter entry (compare-and-swap, retried). */
  async #allocateUidNumber(client: Client): Promise<number> {
    const contexts = await this.#namingContexts(client);
    const counterDn = this.#config.admin.id_counter_dn ||
      (contexts[0] ? `cn=uidNext,${contexts[0]}` : undefined);
    if (counterDn === undefined) {
      throw new LdapAdminError("no naming context to keep the uid counter in: set id_counter_dn");
    }
    const min = this.#config.admin.uid_number_min;
    for (let attempt = 0; attempt < 50; attempt++) {
      let current: number | undefined;
      try {
        const { searchEntries } = await client.search(counterDn, {
          scope: "base",
          attributes: ["uidNumber"],
        });
        const value = searchEntries[0] && attributeValues(searchEntries[0], "uidNumber")[0];
        current = value === undefined ? undefined : Number(value);
      } catch (error) {
        if (resultCode(error) !== 32) throw error;
      }
      if (current === undefined) {
        const start = Math.max(min, (await this.#maxUidNumber(client, contexts)) + 1);
        try {
          await client.add(counterDn, {
            objectClass: ["top", "applicationProcess", "extensibleObject"],
            cn: unescapeDnValue(splitDn(counterDn)[0].slice(3)),
            uidNumber: String(start),
            description: "next free uidNumber, allocated by relay user add --ldap",
          });
        } catch (error) {
          if (resultCode(error) !== 68) {
            throw new LdapAdminError(
              `cannot create the uid counter ${counterDn}: ${describe(error)}`,
              {
                cause: error,
              },
            );
          }
        }
        continue;
      }
      const next = Math.max(current, min);
      try {
        await client.modify(counterDn, [
          new Change({
            operation: "delete",
            modification: new Attribute({ type: "uidNumber", values: [String(current)] }),
          }),
          new Change({
            operation: "add",
            modification: new Attribute({ type: "uidNumber", values: [String(next + 1)] }),
          }),
        ]);
      } catch (error) {
        // 16 noSuchAttribute: another admin took this number first; read again.
        if (resultCode(error) !== 16) throw error;
        await sleep(5 + Math.floor(Math.random() * 20));
        continue;
      }
      if (!await this.#uidNumberInUse(client, contexts, next)) return next;
    }
    throw new LdapAdminError(`could not allocate a uidNumber from ${counterDn}`);
  }
}
