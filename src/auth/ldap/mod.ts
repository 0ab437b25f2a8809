/**
 * LDAP: password authentication against a directory (OpenLDAP, 389 DS) and
 * the admin operations behind `relay user ... --ldap`.
 *
 * ```ts ignore
 * import { createLdapAuthenticator } from "./src/auth/ldap/mod.ts";
 *
 * const ldap = await createLdapAuthenticator(config.ldap); // reads config.ldap.ca
 * const result = await ldap.verifyPassword("john.doe@example.com", password);
 * // result.ok === false && result.reason === "temporary_failure" → 454 4.7.0
 * await ldap.close();
 * ```
 *
 * @module
 */
export {
  ACCOUNT_STATE_ATTRIBUTES,
  type AccountState,
  accountStateOf,
  attributeValues,
  bindRefusal,
  describeAccountState,
  isAdministrativeLock,
  parseGeneralizedTime,
} from "./account_state.ts";
export {
  baseDnFor,
  bindDnFor,
  type BindOutcome,
  bindOutcome,
  createLdapAuthenticator,
  endpointFor,
  isEntryDisabled,
  LdapAuthenticator,
  type LdapAuthenticatorOptions,
  type LdapUser,
  readLdapCa,
  userFilterFor,
} from "./authenticator.ts";
export {
  type LdapEndpoint,
  LdapPool,
  type LdapPoolOptions,
  LdapUnavailableError,
} from "./connection.ts";
export { domainDcChain, escapeDnValue, escapeFilterValue, fillTemplate } from "./escape.ts";
export { hashSaltedSha, type SaltedShaScheme, verifySaltedSha } from "./password_hash.ts";
export {
  PASSWORD_MODIFY_OID,
  type PasswordMethod,
  passwordModifyRequest,
  supportsPasswordModify,
} from "./password_write.ts";
export type { LdapConfig } from "../../config/ldap_schema.ts";
