/**
 * Account states the directory enforces, in the two dialects relay meets:
 * 389 DS (`nsAccountLock`, bind result 53 "account inactivated", 19 after
 * too many failures, `passwordExpirationTime`) and OpenLDAP's ppolicy overlay
 * (`pwdAccountLockedTime`, expired passwords). Both answer the
 * draft-behera password policy control on a bind, which names the reason a
 * bind with the right password was still refused.
 *
 * @module
 */
import { type Entry, PasswordPolicyControl, PasswordPolicyError } from "ldapts";

/** What a directory says about an account. */
export type AccountState =
  | { kind: "active" }
  /**
   * Locked by an administrator or after failed binds; `reason` names the
   * attribute or result, `attribute` the entry attribute that said so (if any).
   */
  | { kind: "locked"; reason: string; attribute?: string }
  /** The password is past its maximum age. */
  | { kind: "expired"; reason: string; attribute?: string };

/**
 * Whether a state stands whatever the bind says: an administrative
 * `nsAccountLock`. (A ppolicy lock or expiry may have timed out or allow
 * grace logins: there the directory's answer to the bind decides.)
 */
export function isAdministrativeLock(state: AccountState): boolean {
  return state.kind === "locked" && state.attribute === "nsAccountLock";
}

/** The user-entry attributes that carry account state (operational: ask for them by name). */
export const ACCOUNT_STATE_ATTRIBUTES: readonly string[] = [
  "nsAccountLock",
  "pwdAccountLockedTime",
  "passwordExpirationTime",
];

/** Values of an attribute, whatever case the server spelled its name in. */
export function attributeValues(entry: Entry, name: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined || key === "dn") return [];
  const value = entry[key];
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => typeof v === "string" ? v : v.toString("utf8"));
}

/** ppolicy's "locked until an administrator unlocks it" value of `pwdAccountLockedTime`. */
const PERMANENT_LOCK = "000001010000Z";

/** Parses an LDAP GeneralizedTime (`20261129130102Z`, fractions allowed); `undefined` if not one. */
export function parseGeneralizedTime(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:[.,]\d+)?Z$/.exec(value.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map((v) => Number(v ?? 0));
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * The state an entry's attributes show (as far as the reader may see them):
 * `nsAccountLock: true`, `pwdAccountLockedTime` (ppolicy), or a 389 DS
 * `passwordExpirationTime` in the past. `now` decides expiry.
 */
export function accountStateOf(entry: Entry, now: Date = new Date()): AccountState {
  if (attributeValues(entry, "nsAccountLock").some((v) => v.trim().toLowerCase() === "true")) {
    return { kind: "locked", reason: "nsAccountLock is true", attribute: "nsAccountLock" };
  }
  const lockedAt = attributeValues(entry, "pwdAccountLockedTime")[0];
  if (lockedAt !== undefined) {
    return {
      kind: "locked",
      attribute: "pwdAccountLockedTime",
      reason: lockedAt.trim() === PERMANENT_LOCK
        ? `pwdAccountLockedTime is ${PERMANENT_LOCK} (locked until an administrator unlocks it)`
        : `pwdAccountLockedTime is ${lockedAt.trim()} (locked by the password policy)`,
    };
  }
  const expires = attributeValues(entry, "passwordExpirationTime")[0];
  const expiry = expires === undefined ? undefined : parseGeneralizedTime(expires);
  if (expiry !== undefined && expiry.getTime() <= now.getTime()) {
    return {
      kind: "expired",
      reason: `passwordExpirationTime ${expires.trim()} has passed`,
      attribute: "passwordExpirationTime",
    };
  }
  return { kind: "active" };
}

/** A fresh password policy request control for one bind (the response lands in its `value`). */
export function passwordPolicyControl(): PasswordPolicyControl {
  return new PasswordPolicyControl();
}

/**
 * Why a bind was refused: `invalid` (wrong password, unknown DN) or an
 * account state, from the result code and the password policy response
 * control (when the server sent one with the result).
 */
export function bindRefusal(
  code: number,
  policy: PasswordPolicyControl | undefined,
): { kind: "invalid" } | Exclude<AccountState, { kind: "active" }> {
  switch (policy?.value?.error) {
    case PasswordPolicyError.PasswordExpired:
      return { kind: "expired", reason: "password policy response passwordExpired" };
    case PasswordPolicyError.AccountLocked:
      return { kind: "locked", reason: "password policy response accountLocked" };
  }
  switch (code) {
    case 53: // unwillingToPerform: 389 DS "Account inactivated"
      return { kind: "locked", reason: "bind result 53, account inactivated" };
    case 19: // constraintViolation: 389 DS lockout after too many failed binds
      return { kind: "locked", reason: "bind result 19, too many failed binds" };
    default:
      return { kind: "invalid" };
  }
}

/** A one-line description for `relay user show --ldap` and the audit trail. */
export function describeAccountState(state: AccountState): string {
  return state.kind === "active" ? "active" : `${state.kind}: ${state.reason}`;
}
