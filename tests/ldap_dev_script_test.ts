/**
 * `scripts/ldap_dev.sh` (OpenLDAP route): the accounts its header documents
 * are the accounts it seeds — every `address / password` pair in the header
 * logs in through the relay's LDAP backend, the locked one is refused as
 * locked, and the service account it prints works.
 */
import assert from "node:assert/strict";
import { LdapAuthenticator } from "../src/auth/ldap/mod.ts";
import { ldapSchema } from "../src/config/ldap_schema.ts";
import { freePorts, run } from "./support/slapd.ts";

const SCRIPT = new URL("../scripts/ldap_dev.sh", import.meta.url).pathname;

Deno.test("ldap_dev.sh seeds the accounts its header documents", async () => {
  const header = (await Deno.readTextFile(SCRIPT)).split("\nset -euo pipefail")[0];
  const pairs = [...header.matchAll(/([\w.-]+@[\w.-]+)\s+\/\s+(\S+)/g)].map((m) => [m[1], m[2]]);
  const service = /(cn=relay,[\w=,]+)\s+\/\s+(\S+)/.exec(header);
  assert.ok(pairs.length >= 3 && service, "the header lists users and the service account");
  const dir = await Deno.makeTempDir({ prefix: "relay-ldap-dev-" });
  const [port, ldapsPort] = freePorts(2);
  const env = { RELAY_LDAP_DEV_DIR: dir, LDAP_PORT: String(port), LDAPS_PORT: String(ldapsPort) };
  const auth = new LdapAuthenticator(ldapSchema.parse({
    url: `ldap://127.0.0.1:${port}`,
    bind_dn: service[1],
    bind_password: service[2],
    timeout_ms: 2000,
  }));
  try {
    const started = await run("bash", [SCRIPT, "start"], undefined, env);
    assert.match(started, new RegExp(`bind_password = "${service[2]}"`));
    for (const [email, password] of pairs) {
      const result = await auth.verifyPassword(email, password);
      if (email.startsWith("locked@")) {
        assert.equal(!result.ok && result.reason, "account_disabled", email);
      } else {
        assert.equal(result.ok && result.email, email, `${email}: ${JSON.stringify(result)}`);
      }
    }
  } finally {
    await auth.close();
    await run("bash", [SCRIPT, "stop"], undefined, env).catch(() => "");
    await Deno.remove(dir, { recursive: true });
  }
});
