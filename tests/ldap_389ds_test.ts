/**
 * The relay against a real 389 Directory Server (Debian `389-ds-base`,
 * created with dscreate; the prototype's DIT, two suffixes), started once for
 * this file: SMTP AUTH by search+bind and by a DN template, `nsAccountLock`
 * (535, the reason in the audit trail and in `user show`), `user add /
 * passwd / remove --ldap` through the Password Modify operation (the
 * directory hashes), and an outage (454) with recovery without a restart.
 */
import assert from "node:assert/strict";
import { Attribute, Change } from "ldapts";
import { start389ds } from "./support/ds389.ts";
import { authenticate, startTestRelay, type TestRelay } from "./support/relay.ts";
import { cli } from "./support/user_ldap_cli.ts";

async function authCode(relay: TestRelay, user: string, password: string): Promise<string> {
  const r = await authenticate(relay, "implicit", user, password);
  await r.client.quit();
  return `${r.code} ${r.enhanced}`;
}

Deno.test("the relay against 389 Directory Server", async (t) => {
  await using ds = await start389ds();
  const ldap = ds.ldapConfig({
    admin: { bind_dn: ds.adminDn, bind_password: ds.adminPassword },
    timeout_ms: 1000,
  });
  const relayWith = (settings: Record<string, unknown>) =>
    startTestRelay({
      users: [],
      config: { auth: { backends: ["ldap"], cache_ttl_seconds: 0 }, ldap: settings },
    });
  const relay = await relayWith(ldap as unknown as Record<string, unknown>);
  try {
    await t.step("search+bind over StartTLS: users of both suffixes send", async () => {
      assert.equal(await authCode(relay, "john.doe@example.com", "John-Doe-Pass-1"), "235 2.7.0");
      assert.equal(await authCode(relay, "alice@company.com", "Alice-Pass-4"), "235 2.7.0");
      assert.equal(await authCode(relay, "JANE.ROE@example.com", "Jane-Roe-Pass-2"), "235 2.7.0");
      assert.equal(await authCode(relay, "alice@company.com", "wrong"), "535 5.7.8");
      assert.equal(await authCode(relay, "alice@example.com", "Alice-Pass-4"), "535 5.7.8");
      const alice = await authenticate(relay, "starttls", "alice@company.com", "Alice-Pass-4");
      const sent = await alice.client.send({
        from: "alice@company.com",
        to: ["someone@example.net"],
        data: new TextEncoder().encode("Subject: via 389\r\n\r\nhello\r\n"),
      });
      assert.equal(sent.final?.code, 250);
      await alice.client.quit();
      await relay.waitForOutbox(1);
    });

    await t.step("nsAccountLock: 535, the reason in the audit trail and user show", async () => {
      assert.equal(await authCode(relay, "locked@example.com", "Locked-Pass-3"), "535 5.7.8");
      const event = relay.audit.events.findLast((e) =>
        e.event === "auth_attempt" && e.email === "locked@example.com"
      );
      assert.equal(event?.reason, "account_disabled");
      assert.match(String(event?.detail), /^account locked: nsAccountLock is true \(uid=locked,/);
      const show = await cli(["show", "--ldap", "locked@example.com"], ldap);
      assert.equal(show.code, 0, show.err);
      assert.match(show.out, /\naccount: locked: nsAccountLock is true$/);
    });

    await t.step("DN template (bind mode) against the same directory", async () => {
      const bindRelay = await relayWith(
        ds.ldapConfig({
          mode: "bind",
          bind_dn_template: "uid={local},ou=users,dc={domain_dc}",
        }) as unknown as Record<string, unknown>,
      );
      try {
        assert.equal(await authCode(bindRelay, "alice@company.com", "Alice-Pass-4"), "235 2.7.0");
        assert.equal(await authCode(bindRelay, "alice@company.com", "nope"), "535 5.7.8");
        // 389 DS answers 53 "account inactivated" to the bind itself.
        assert.equal(await authCode(bindRelay, "locked@example.com", "Locked-Pass-3"), "535 5.7.8");
        const event = bindRelay.audit.events.findLast((e) => e.email === "locked@example.com");
        assert.match(String(event?.detail), /^account locked: nsAccountLock is true/);
      } finally {
        await bindRelay.close();
      }
    });

    await t.step("user add / passwd / remove --ldap: the directory hashes", async () => {
      const add = await cli(
        [
          "add",
          "--ldap",
          "bob@company.com",
          "--first",
          "Bob",
          "--last",
          "Builder",
          "--password-stdin",
        ],
        ldap,
        "Bob-Pass-1\n",
      );
      assert.equal(add.code, 0, add.err);
      assert.match(add.out, /added bob@company\.com as uid=bob,ou=users,dc=company,dc=com/);
      assert.match(add.out, /password hashed by the directory \(Password Modify\)/);
      const stored = await ds.asAdmin((c) =>
        c.search("dc=company,dc=com", { filter: "(uid=bob)", attributes: ["userPassword"] })
      );
      // 389 DS's own scheme, not one the relay makes.
      assert.match(String(stored.searchEntries[0].userPassword), /^\{PBKDF2-SHA512\}/);
      assert.equal(await authCode(relay, "bob@company.com", "Bob-Pass-1"), "235 2.7.0");

      const passwd = await cli(
        ["passwd", "--ldap", "bob@company.com", "--password-stdin"],
        ldap,
        "Bob-Pass-2\n",
      );
      assert.equal(passwd.code, 0, passwd.err);
      assert.equal(await authCode(relay, "bob@company.com", "Bob-Pass-1"), "535 5.7.8");
      assert.equal(await authCode(relay, "bob@company.com", "Bob-Pass-2"), "235 2.7.0");

      // An administrator locks bob: the next AUTH is refused.
      await ds.asAdmin((c) =>
        c.modify(
          "uid=bob,ou=users,dc=company,dc=com",
          new Change({
            operation: "add",
            modification: new Attribute({ type: "nsAccountLock", values: ["true"] }),
          }),
        )
      );
      assert.equal(await authCode(relay, "bob@company.com", "Bob-Pass-2"), "535 5.7.8");
      // passwd on a locked account writes the password but says it cannot be used yet.
      const locked = await cli(
        ["passwd", "--ldap", "bob@company.com", "--password-stdin"],
        ldap,
        "Bob-Pass-3\n",
      );
      assert.equal(locked.code, 1);
      assert.match(locked.err, /likely cause: the account is locked: nsAccountLock is true/);

      const remove = await cli(["remove", "--ldap", "bob@company.com"], ldap);
      assert.equal(remove.code, 0, remove.err);
      assert.equal(await authCode(relay, "bob@company.com", "Bob-Pass-3"), "535 5.7.8");
    });

    await t.step("without TLS 389 DS refuses Password Modify; the error says so", async () => {
      const plain = ds.ldapConfig({
        url: `ldap://127.0.0.1:${ds.port}`,
        starttls: false,
        admin: { bind_dn: ds.adminDn, bind_password: ds.adminPassword },
      });
      const add = await cli(
        [
          "add",
          "--ldap",
          "carol@example.com",
          "--first",
          "Carol",
          "--last",
          "C",
          "--password-stdin",
        ],
        plain,
        "Carol-Pass-1\n",
      );
      assert.equal(add.code, 1);
      assert.match(add.err, /only over TLS; set \[ldap\] starttls = true/);
      assert.equal((await cli(["show", "--ldap", "carol@example.com"], plain)).code, 1);
    });

    await t.step("directory down: 454 4.7.0; back up: AUTH works, no restart", async () => {
      await ds.stop();
      assert.equal(await authCode(relay, "john.doe@example.com", "John-Doe-Pass-1"), "454 4.7.0");
      await ds.start();
      assert.equal(await authCode(relay, "john.doe@example.com", "John-Doe-Pass-1"), "235 2.7.0");
    });
  } finally {
    await relay.close();
  }
});
