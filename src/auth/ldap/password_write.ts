/**
 * Setting a user's password the way the directory wants it: the Password
 * Modify extended operation (RFC 3062) when the root DSE lists it, so the
 * directory hashes the password by its own policy; else a `userPassword`
 * value hashed here. Then one bind as the user proves the password works,
 * and a failure is explained in words an operator can act on.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Attribute, BerWriter, Change, type Client } from "ldapts";
import type { LdapConfig } from "../../config/ldap_schema.ts";
import { attributeValues } from "./account_state.ts";
import { type BindOutcome, bindOutcome } from "./authenticator.ts";
import {
  describe,
  discardClient,
  type LdapEndpoint,
  openClient,
  resultCode,
} from "./connection.ts";
import { hashSaltedSha } from "./password_hash.ts";

/** RFC 3062 Password Modify extended operation. */
export const PASSWORD_MODIFY_OID = "1.3.6.1.4.1.4203.1.11.1";

/** How a password is written: by the directory (RFC 3062) or as a hashed `userPassword`. */
export type PasswordMethod = "password_modify" | "user_password";

/**
 * The PasswdModifyRequestValue of RFC 3062:
 * `SEQUENCE { userIdentity [0] OCTET STRING, newPasswd [2] OCTET STRING }`.
 */
export function passwordModifyRequest(dn: string, password: string): Buffer {
  const writer = new BerWriter();
  writer.startSequence();
  writer.writeString(dn, 0x80);
  writer.writeString(password, 0x82);
  writer.endSequence();
  return writer.buffer;
}

/** Whether the root DSE lists the Password Modify extended operation in `supportedExtension`. */
export async function supportsPasswordModify(client: Client): Promise<boolean> {
  const { searchEntries } = await client.search("", {
    scope: "base",
    filter: "(objectClass=*)",
    attributes: ["supportedExtension"],
  });
  const listed = searchEntries[0] ? attributeValues(searchEntries[0], "supportedExtension") : [];
  return listed.some((oid) => oid.trim() === PASSWORD_MODIFY_OID);
}

/** The method `[ldap.admin] password_method` asks for, asking the directory when it is `auto`. */
export async function choosePasswordMethod(
  client: Client,
  config: LdapConfig,
): Promise<PasswordMethod> {
  const wanted = config.admin.password_method;
  if (wanted !== "auto") return wanted;
  return await supportsPasswordModify(client) ? "password_modify" : "user_password";
}

/**
 * Writes `password` for `dn` with `method` on an admin connection. For
 * `user_password` the value is hashed with `[ldap.admin] password_scheme`.
 */
export async function writePassword(
  client: Client,
  config: LdapConfig,
  dn: string,
  password: string,
  method: PasswordMethod,
): Promise<void> {
  if (method === "password_modify") {
    await client.exop(PASSWORD_MODIFY_OID, passwordModifyRequest(dn, password));
    return;
  }
  await client.modify(dn, userPasswordChange(config, password));
}

/** A `replace: userPassword` with the password hashed by `[ldap.admin] password_scheme`. */
export function userPasswordChange(config: LdapConfig, password: string): Change {
  return new Change({
    operation: "replace",
    modification: new Attribute({
      type: "userPassword",
      values: [hashSaltedSha(config.admin.password_scheme, password)],
    }),
  });
}

/**
 * Binds once as `dn` with `password` on a fresh connection (never the
 * admin's): what the directory says when this user logs in.
 */
export async function bindAsUser(
  endpoint: LdapEndpoint,
  dn: string,
  password: string,
): Promise<BindOutcome> {
  const client = await openClient(endpoint);
  try {
    return await bindOutcome(client, dn, password);
  } finally {
    await discardClient(client);
  }
}

/**
 * The likely cause of a failed verification bind, in an operator's words.
 * `error` is a thrown bind error (transport, TLS required...), if any.
 */
export function likelyCause(
  config: LdapConfig,
  method: PasswordMethod,
  outcome: BindOutcome | undefined,
  error?: unknown,
): string {
  if (error !== undefined) {
    const code = resultCode(error) ?? resultCode((error as { cause?: unknown }).cause);
    if (code === 13) {
      return "the directory requires TLS for binds: set [ldap] starttls = true or an ldaps:// url";
    }
    return `the bind could not be made: ${describe(error)}`;
  }
  if (outcome === undefined || outcome.kind === "ok") return "none";
  if (outcome.kind !== "invalid") {
    return `the account is ${outcome.kind}: ${outcome.reason}`;
  }
  if (method === "user_password") {
    const scheme = config.admin.password_scheme;
    return scheme === "SSHA"
      ? "the directory cannot verify {SSHA} values"
      : `the directory cannot verify {${scheme}} values (OpenLDAP needs the pw-sha2 module): ` +
        `set [ldap.admin] password_scheme = "SSHA" or password_method = "password_modify"`;
  }
  return "the directory stored something else than the password sent " +
    "(a password policy or plug-in rewrote it)";
}
