/** The `[ldap]` schema and how a config turns into search bases, filters and bind DNs. */
import assert from "node:assert/strict";
import { ldapSchema } from "../src/config/ldap_schema.ts";
import { baseDnFor, bindDnFor, LdapAuthenticator, userFilterFor } from "../src/auth/ldap/mod.ts";

Deno.test("an empty [ldap] section gets every default", () => {
  const config = ldapSchema.parse(undefined);
  assert.equal(config.url, "ldap://127.0.0.1:3389");
  assert.equal(config.mode, "search");
  assert.equal(config.user_filter, "(&(objectClass=inetOrgPerson)(mail={email}))");
  assert.equal(config.timeout_ms, 5000);
  assert.equal(config.pool_size, 4);
  assert.equal(config.starttls, false);
  assert.deepEqual(config.domains, {});
  assert.equal(config.admin.password_scheme, "SSHA512");
  assert.equal(config.admin.uid_number_min, 10000);
});

Deno.test("the [ldap] schema names bad keys", () => {
  const bad = (input: unknown) => {
    const result = ldapSchema.safeParse(input);
    assert.equal(result.success, false);
    return result.error!.issues.map((i) => i.path.join("."));
  };
  assert.deepEqual(bad({ url: "http://ldap.example.com" }), ["url"]);
  assert.deepEqual(bad({ mode: "magic" }), ["mode"]);
  assert.deepEqual(bad({ pool_size: 0 }), ["pool_size"]);
  assert.deepEqual(bad({ base_dns: "dc=x" }), [""]);
  assert.deepEqual(bad({ domains: { "company.com": { base: "dc=x" } } }).sort(), [
    "domains.company.com", // unknown key "base"
    "domains.company.com.base_dn", // missing
  ]);
  assert.deepEqual(bad({ admin: { password_scheme: "PLAIN" } }), ["admin.password_scheme"]);
  assert.equal(
    ldapSchema.parse({ url: "ldaps://ldap.example.com:636" }).url,
    "ldaps://ldap.example.com:636",
  );
});

Deno.test("search bases: per-domain entry, then base_dn, then ou=users,dc=<labels>", () => {
  const derived = ldapSchema.parse({});
  assert.equal(baseDnFor(derived, "company.com"), "ou=users,dc=company,dc=com");
  assert.equal(baseDnFor(derived, "mail.example.co.uk"), "ou=users,dc=mail,dc=example,dc=co,dc=uk");
  const configured = ldapSchema.parse({
    base_dn: "ou=people,dc=corp",
    domains: { "Company.COM": { base_dn: "ou=staff,dc=company,dc=com" } },
  });
  assert.equal(baseDnFor(configured, "company.com"), "ou=staff,dc=company,dc=com");
  assert.equal(baseDnFor(configured, "example.com"), "ou=people,dc=corp");
});

Deno.test("filters and bind DNs escape what the client typed", () => {
  const config = ldapSchema.parse({ bind_dn_template: "uid={local},ou=users,dc={domain_dc}" });
  assert.equal(
    userFilterFor(config, "*)(uid=*", "example.com"),
    "(&(objectClass=inetOrgPerson)(mail=\\2a\\29\\28uid=\\2a@example.com))",
  );
  assert.equal(
    bindDnFor(config, "doe,john", "company.com"),
    "uid=doe\\,john,ou=users,dc=company,dc=com",
  );
  const byBase = ldapSchema.parse({});
  assert.equal(bindDnFor(byBase, "john", "company.com"), "uid=john,ou=users,dc=company,dc=com");
});

Deno.test("a filter or DN template that cannot work stops the start", () => {
  assert.throws(
    () => new LdapAuthenticator(ldapSchema.parse({ user_filter: "(mail={mail})" })),
    /\[ldap\] user_filter: unknown placeholder \{mail\}/,
  );
  assert.throws(
    () => new LdapAuthenticator(ldapSchema.parse({ user_filter: "(&(mail={email})" })),
    /\[ldap\] user_filter/,
  );
  assert.throws(
    () => new LdapAuthenticator(ldapSchema.parse({ bind_dn_template: "uid={user},{base_dn}" })),
    /\[ldap\] bind_dn_template: unknown placeholder \{user\}/,
  );
});
