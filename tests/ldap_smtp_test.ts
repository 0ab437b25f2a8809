/**
 * SMTP AUTH against a real OpenLDAP directory (two domains, one suffix each),
 * through the relay: PLAIN over SMTPS, LOGIN over STARTTLS, nodemailer; the
 * domain policy; a locked account; slapd stopped (454, never 535) and
 * restarted (the next AUTH works without restarting the relay); a user
 * created with `relay user add --ldap` logs in.
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import { DEFAULT_USERS, startSlapd } from "./support/slapd.ts";
import { cli } from "./support/user_ldap_cli.ts";
import { authenticate, startTestRelay } from "./support/relay.ts";

const encoder = new TextEncoder();

Deno.test("SMTP AUTH against OpenLDAP through the relay", async (t) => {
  await using slapd = await startSlapd({
    users: [...DEFAULT_USERS, { email: "old@example.com", password: "Old-Pass-5", expired: true }],
  });
  const ldap = slapd.ldapConfig({
    admin: { bind_dn: slapd.adminDn, bind_password: slapd.adminPassword },
    timeout_ms: 1000,
  });
  const relay = await startTestRelay({
    users: [],
    config: {
      auth: { backends: ["ldap"], cache_ttl_seconds: 0 },
      ldap: ldap as unknown as Record<string, unknown>,
    },
  });
  try {
    await t.step("PLAIN over SMTPS and LOGIN over STARTTLS, both domains", async () => {
      const john = await authenticate(relay, "implicit", "john.doe@example.com", "John-Doe-Pass-1");
      assert.equal(john.code, 235);
      const sent = await john.client.send({
        from: "john.doe@example.com",
        to: ["someone@example.net"],
        data: encoder.encode("Subject: from ldap\r\n\r\nhello\r\n"),
      });
      assert.equal(sent.final?.code, 250);
      await john.client.quit();
      const alice = await authenticate(
        relay,
        "starttls",
        "alice@company.com",
        "Alice-Pass-4",
        "LOGIN",
      );
      assert.equal(alice.code, 235);
      await alice.client.quit();
      await relay.waitForOutbox(1);
    });

    await t.step("nodemailer over STARTTLS with a user stored with capitals", async () => {
      const transport = nodemailer.createTransport({
        host: "127.0.0.1",
        port: relay.submissionPort,
        requireTLS: true,
        auth: { user: "jane.roe@example.com", pass: "Jane-Roe-Pass-2" },
        tls: { ca: [relay.caPem], servername: "localhost" },
      });
      try {
        const info = await transport.sendMail({
          from: "Jane.Roe@example.com",
          to: "x@example.net",
          subject: "ldap nodemailer",
          text: "hi",
        });
        assert.deepEqual(info.accepted, ["x@example.net"]);
      } finally {
        transport.close();
      }
    });

    await t.step("the domain policy holds for directory users", async () => {
      const alice = await authenticate(relay, "implicit", "alice@company.com", "Alice-Pass-4");
      try {
        await alice.client.sendLine("MAIL FROM:<alice@example.com>");
        const reply = await alice.client.readReply();
        assert.equal(reply.code, 550);
        assert.equal(
          reply.lines[0],
          "5.7.1 Domain mismatch: authenticated domain (company.com) does not match MAIL FROM domain (example.com)",
        );
      } finally {
        await alice.client.quit();
      }
    });

    await t.step("wrong password, unknown user and a locked account: 535 5.7.8", async () => {
      for (
        const [user, password] of [
          ["john.doe@example.com", "wrong"],
          ["nobody@example.com", "John-Doe-Pass-1"],
          ["locked@example.com", "Locked-Pass-3"],
        ]
      ) {
        const r = await authenticate(relay, "implicit", user, password);
        assert.equal(r.code, 535, user);
        assert.equal(r.enhanced, "5.7.8");
        await r.client.quit();
      }
    });

    await t.step("ppolicy lock and expiry: 535, the reason audited and shown", async () => {
      const cases = [
        ["locked@example.com", "Locked-Pass-3", /^account locked: pwdAccountLockedTime is /],
        ["old@example.com", "Old-Pass-5", /^password expired: password policy response /],
      ] as const;
      for (const [user, password, detail] of cases) {
        const r = await authenticate(relay, "implicit", user, password);
        assert.equal(`${r.code} ${r.enhanced}`, "535 5.7.8", user);
        await r.client.quit();
        const event = relay.audit.events.findLast((e) =>
          e.event === "auth_attempt" && e.email === user
        );
        assert.equal(event?.reason, "account_disabled");
        assert.match(String(event?.detail), detail);
      }
      const locked = await cli(["show", "--ldap", "locked@example.com"], ldap);
      assert.match(locked.out, /\naccount: locked: pwdAccountLockedTime is 000001010000Z/);
      const old = await cli(["show", "--ldap", "old@example.com"], ldap);
      assert.match(
        old.out,
        /\naccount: expired: the password is older than pwdMaxAge 86400 s of cn=expiring,ou=policies,dc=example,dc=com \(expired 2000-01-02T00:00:00\.000Z\)\npassword changed: 2000-01-01T00:00:00\.000Z$/,
      );
      const john = await cli(["show", "--ldap", "john.doe@example.com"], ldap);
      assert.match(john.out, /\naccount: active$/);
    });

    await t.step("directory down: 454 4.7.0; back up: the next AUTH succeeds", async () => {
      await slapd.stop();
      const down = await authenticate(relay, "implicit", "john.doe@example.com", "John-Doe-Pass-1");
      assert.equal(down.code, 454);
      assert.equal(down.enhanced, "4.7.0");
      await down.client.quit();
      await slapd.restart();
      const up = await authenticate(relay, "implicit", "john.doe@example.com", "John-Doe-Pass-1");
      assert.equal(up.code, 235);
      await up.client.quit();
      assert.ok(
        relay.audit.events.some((e) =>
          e.event === "auth_attempt" && e.reason === "temporary_failure"
        ),
      );
    });

    await t.step("a user created with `relay user add --ldap` can send", async () => {
      const password = "New-User-Pass-9";
      const { code, err } = await cli(
        [
          "add",
          "--ldap",
          "new.user@company.com",
          "--first",
          "New",
          "--last",
          "User",
          "--password-stdin",
        ],
        ldap,
        `${password}\n`,
      );
      assert.equal(code, 0, err);
      const [entry] = await slapd.search("dc=company,dc=com", "(uid=new.user)", ["userPassword"]);
      assert.ok(!String(entry.userPassword).includes(password));
      const r = await authenticate(relay, "starttls", "new.user@company.com", password);
      assert.equal(r.code, 235);
      await r.client.quit();
    });
  } finally {
    await relay.close();
  }
});
