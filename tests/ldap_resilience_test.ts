/**
 * LdapAuthenticator when the directory misbehaves: stopped, restarted,
 * hung, connections cut by the server side or a firewall — and the bind
 * an unknown user costs. Uses one slapd, and a TCP proxy where a test must
 * cut connections or watch binds.
 */
import assert from "node:assert/strict";
import { LdapAuthenticator, LdapUnavailableError } from "../src/auth/ldap/mod.ts";
import { startLdapProxy, startSlapd } from "./support/slapd.ts";

const JOHN = ["john.doe@example.com", "John-Doe-Pass-1"] as const;
const ALICE = ["alice@company.com", "Alice-Pass-4"] as const;

Deno.test("LdapAuthenticator resilience", async (t) => {
  await using slapd = await startSlapd();

  await t.step("pool connections cut by the server side are replaced on the next use", async () => {
    const proxy = startLdapProxy(slapd.port);
    const auth = new LdapAuthenticator(slapd.ldapConfig({ url: proxy.url }));
    try {
      assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
      const before = proxy.accepted;
      assert.ok(proxy.open >= 2, `open ${proxy.open}`); // a service and a user-bind connection
      proxy.killAll();
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(proxy.open, 0);
      // The very next verification works: no error until restart.
      assert.equal((await auth.verifyPassword(...ALICE)).ok, true);
      assert.ok(proxy.accepted > before);
      // Cut again without a pause, with several verifications in flight.
      proxy.killAll();
      const results = await Promise.all([
        auth.verifyPassword(...JOHN),
        auth.verifyPassword(...ALICE),
        auth.verifyPassword(...JOHN),
      ]);
      assert.deepEqual(results.map((r) => r.ok), [true, true, true]);
      const wrong = await auth.verifyPassword(JOHN[0], "wrong");
      assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
    } finally {
      await auth.close();
      await proxy.close();
    }
  });

  await t.step(
    "black-holed pooled connections time out and fresh ones take over",
    async () => {
      const proxy = startLdapProxy(slapd.port);
      const auth = new LdapAuthenticator(slapd.ldapConfig({ url: proxy.url, timeout_ms: 300 }));
      try {
        assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
        proxy.freezeAll();
        const start = performance.now();
        const hung = await auth.verifyPassword(...JOHN);
        const elapsed = performance.now() - start;
        // Each pooled connection times out once; the retry on a fresh connection succeeds.
        assert.equal(hung.ok, true, JSON.stringify(hung));
        assert.ok(elapsed >= 500, `took ${elapsed} ms`);
        assert.ok(elapsed < 3000, `took ${elapsed} ms`);
        assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
      } finally {
        await auth.close();
        await proxy.close();
      }
    },
  );

  await t.step("an unknown user costs one bind, like a wrong password", async () => {
    const proxy = startLdapProxy(slapd.port);
    const auth = new LdapAuthenticator(slapd.ldapConfig({ url: proxy.url }));
    try {
      assert.equal((await auth.verifyPassword(...JOHN)).ok, true); // warm both pools
      proxy.binds.length = 0;
      const wrong = await auth.verifyPassword(JOHN[0], "Wrong-1");
      assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
      assert.deepEqual(proxy.binds, ["uid=john.doe,ou=users,dc=example,dc=com"]);
      proxy.binds.length = 0;
      const unknown = await auth.verifyPassword("nobody@example.com", "Wrong-1");
      assert.equal(!unknown.ok && unknown.reason, "invalid_credentials");
      assert.equal(proxy.binds.length, 1);
      assert.match(proxy.binds[0], /^cn=relay-no-such-user-[0-9a-f-]+,ou=users,dc=example,dc=com$/);
    } finally {
      await auth.close();
      await proxy.close();
    }
  });

  const auth = new LdapAuthenticator(slapd.ldapConfig({ timeout_ms: 500 }));
  try {
    await t.step(
      "slapd stopped: temporary_failure, lookupUser throws LdapUnavailableError",
      async () => {
        assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
        await slapd.stop();
        const start = performance.now();
        const result = await auth.verifyPassword(...JOHN);
        assert.equal(!result.ok && result.reason, "temporary_failure");
        assert.ok(performance.now() - start < 2000);
        const unknown = await auth.verifyPassword("nobody@example.com", "x");
        assert.equal(!unknown.ok && unknown.reason, "temporary_failure");
        await assert.rejects(auth.lookupUser(JOHN[0]), LdapUnavailableError);
      },
    );

    await t.step("slapd restarted: the same authenticator works again", async () => {
      await slapd.restart();
      assert.deepEqual(await auth.verifyPassword(...JOHN), {
        ok: true,
        email: "john.doe@example.com",
        domain: "example.com",
        backend: "ldap",
      });
      assert.equal((await auth.verifyPassword(...ALICE)).ok, true);
      assert.equal((await auth.lookupUser(ALICE[0]))?.email, "alice@company.com");
    });

    await t.step("restart while connections are pooled: no error after it", async () => {
      assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
      await slapd.restart();
      assert.equal((await auth.verifyPassword(...ALICE)).ok, true);
    });

    await t.step("hung slapd: temporary_failure within the timeout, then recovery", async () => {
      assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
      slapd.pause();
      try {
        const start = performance.now();
        const result = await auth.verifyPassword(...JOHN);
        const elapsed = performance.now() - start;
        assert.equal(!result.ok && result.reason, "temporary_failure");
        assert.ok(elapsed >= 450 && elapsed < 4000, `took ${elapsed} ms`);
      } finally {
        slapd.resume();
      }
      assert.equal((await auth.verifyPassword(...JOHN)).ok, true);
    });
  } finally {
    await auth.close();
  }
});
