/**
 * slapd's own idle timeout closes the relay's pooled connections; the next
 * verification must open new ones and succeed.
 */
import assert from "node:assert/strict";
import { LdapAuthenticator } from "../src/auth/ldap/mod.ts";
import { startSlapd } from "./support/slapd.ts";

Deno.test("LdapAuthenticator after slapd closed idle connections", async () => {
  await using slapd = await startSlapd({ idleTimeoutSeconds: 1 });
  const auth = new LdapAuthenticator(slapd.ldapConfig({ starttls: true }), { caPem: slapd.caPem });
  try {
    assert.equal((await auth.verifyPassword("john.doe@example.com", "John-Doe-Pass-1")).ok, true);
    // slapd checks idle connections about every idletimeout/2 seconds.
    await new Promise((resolve) => setTimeout(resolve, 2600));
    const results = await Promise.all([
      auth.verifyPassword("alice@company.com", "Alice-Pass-4"),
      auth.verifyPassword("john.doe@example.com", "John-Doe-Pass-1"),
    ]);
    assert.deepEqual(results.map((r) => r.ok), [true, true]);
    const wrong = await auth.verifyPassword("alice@company.com", "nope");
    assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
  } finally {
    await auth.close();
  }
});
