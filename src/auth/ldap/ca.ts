/**
 * Reading the LDAP CA file, apart from the LDAP client: `relay check` and
 * the relay's start read it without loading npm `ldapts`.
 *
 * @module
 */
import type { LdapConfig } from "../../config/ldap_schema.ts";

/** Reads `config.ca` (when set) for the authenticator's `caPem` option. */
export async function readLdapCa(config: LdapConfig): Promise<string | undefined> {
  return config.ca === "" ? undefined : await Deno.readTextFile(config.ca);
}
