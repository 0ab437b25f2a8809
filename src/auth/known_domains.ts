/**
 * Which mail domains the relay serves, as far as it can tell: domains with
 * users in the password files, the `[ldap.domains]` entries (an LDAP
 * directory cannot be listed), and `autoconfig.domains`; never a disabled
 * domain. Client autoconfig answers only for these.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { normalizeDomain } from "../mail/mod.ts";
import type { UserStore } from "./user_file.ts";

function normalized(domains: Iterable<string>): Set<string> {
  return new Set([...domains].map((d) => normalizeDomain(d) ?? d.toLowerCase()));
}

/**
 * Builds the check for `config`; `store` is the users-file store (read on
 * every call, so users added later count at once).
 */
export function knownDomainCheck(
  config: Config,
  store: UserStore,
): (domain: string) => Promise<boolean> {
  const disabled = normalized(config.domains.disabled);
  const listed = normalized(config.autoconfig.domains);
  const ldap = config.auth.backends.includes("ldap")
    ? normalized(Object.keys(config.ldap.domains))
    : new Set<string>();
  const files = config.auth.backends.includes("file");
  return async (raw) => {
    const domain = normalizeDomain(raw);
    if (domain === null || disabled.has(domain)) return false;
    if (listed.has(domain) || ldap.has(domain)) return true;
    if (!files) return false;
    try {
      return (await store.listUsers({ domain })).length > 0;
    } catch {
      return false;
    }
  };
}
