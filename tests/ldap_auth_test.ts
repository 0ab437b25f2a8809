/**
 * LdapAuthenticator against a real OpenLDAP slapd: search-then-bind and
 * direct-bind modes, both domains, wrong/unknown/locked users, expired
 * passwords (ppolicy), filter injection, LDAPS and StartTLS with a test CA,
 * and lookupUser.
 */
import assert from "node:assert/strict";
import { LdapAuthenticator } from "../src/auth/ldap/mod.ts";
import { DEFAULT_USERS, startSlapd } from "./support/slapd.ts";

Deno.test("LdapAuthenticator against slapd", async (t) => {
  await using slapd = await startSlapd({
    users: [...DEFAULT_USERS, { email: "old@example.com", password: "Old-Pass-5", expired: true }],
  });
  const auth = new LdapAuthenticator(slapd.ldapConfig());
  try {
    await t.step("search mode: users of both domains authenticate", async () => {
      assert.deepEqual(await auth.verifyPassword("john.doe@example.com", "John-Doe-Pass-1"), {
        ok: true,
        email: "john.doe@example.com",
        domain: "example.com",
        backend: "ldap",
      });
      assert.deepEqual(await auth.verifyPassword("alice@company.com", "Alice-Pass-4"), {
        ok: true,
        email: "alice@company.com",
        domain: "company.com",
        backend: "ldap",
      });
    });

    await t.step(
      "the identity is the canonical lower-case mail, however it was typed",
      async () => {
        const result = await auth.verifyPassword("JANE.ROE@example.com", "Jane-Roe-Pass-2");
        assert.deepEqual(result, {
          ok: true,
          email: "jane.roe@example.com",
          domain: "example.com",
          backend: "ldap",
        });
      },
    );

    await t.step("wrong password and unknown user are invalid_credentials", async () => {
      const wrong = await auth.verifyPassword("john.doe@example.com", "John-Doe-Pass-X");
      assert.equal(wrong.ok, false);
      assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
      const unknown = await auth.verifyPassword("nobody@example.com", "whatever");
      assert.equal(!unknown.ok && unknown.reason, "invalid_credentials");
      // A domain the directory has no tree for at all.
      const noTree = await auth.verifyPassword("john.doe@elsewhere.org", "John-Doe-Pass-1");
      assert.equal(!noTree.ok && noTree.reason, "invalid_credentials");
      // A user of one domain cannot log in under another domain.
      const crossDomain = await auth.verifyPassword("john.doe@company.com", "John-Doe-Pass-1");
      assert.equal(!crossDomain.ok && crossDomain.reason, "invalid_credentials");
    });

    await t.step("an empty password is refused, not an anonymous bind", async () => {
      const result = await auth.verifyPassword("john.doe@example.com", "");
      assert.equal(!result.ok && result.reason, "invalid_credentials");
    });

    await t.step(
      "a locked account is account_disabled, with the attribute that says so",
      async () => {
        assert.deepEqual(await auth.verifyPassword("locked@example.com", "Locked-Pass-3"), {
          ok: false,
          reason: "account_disabled",
          detail: "account locked: pwdAccountLockedTime is 000001010000Z (locked until an " +
            "administrator unlocks it) (uid=locked,ou=users,dc=example,dc=com)",
        });
      },
    );

    await t.step("an expired password (ppolicy pwdMaxAge) is account_disabled", async () => {
      for (const mode of ["search", "bind"]) {
        const modeAuth = new LdapAuthenticator(slapd.ldapConfig({ mode }));
        try {
          assert.deepEqual(await modeAuth.verifyPassword("old@example.com", "Old-Pass-5"), {
            ok: false,
            reason: "account_disabled",
            detail: "password expired: password policy response passwordExpired " +
              "(uid=old,ou=users,dc=example,dc=com)",
          }, mode);
          // A wrong password stays a wrong password.
          const wrong = await modeAuth.verifyPassword("old@example.com", "Old-Pass-X");
          assert.equal(!wrong.ok && wrong.reason, "invalid_credentials", mode);
        } finally {
          await modeAuth.close();
        }
      }
    });

    await t.step("filter metacharacters in the login name are escaped", async () => {
      for (
        const attempt of [
          "*)(uid=*@example.com",
          "*@example.com",
          "john.doe@example.com)(|(mail=*",
          "j*@example.com",
          "john.doe\\2a@example.com",
        ]
      ) {
        const result = await auth.verifyPassword(attempt, "John-Doe-Pass-1");
        assert.equal(result.ok, false, attempt);
        assert.equal(!result.ok && result.reason, "invalid_credentials", attempt);
      }
    });

    await t.step("lookupUser finds users and says who is locked", async () => {
      const jane = await auth.lookupUser("jane.roe@EXAMPLE.com");
      assert.equal(jane?.email, "jane.roe@example.com");
      assert.equal(jane?.dn, "uid=jane.roe,ou=users,dc=example,dc=com");
      assert.equal(jane?.givenName, "Jane");
      assert.equal(jane?.surname, "Roe");
      assert.equal(jane?.disabled, false);
      assert.equal((await auth.lookupUser("locked@example.com"))?.disabled, true);
      assert.equal(await auth.lookupUser("nobody@company.com"), null);
      assert.equal(await auth.lookupUser("*@example.com"), null);
      assert.equal(await auth.lookupUser("not an address"), null);
    });

    await t.step("bind mode with a DN template", async () => {
      const bindAuth = new LdapAuthenticator(
        slapd.ldapConfig({ mode: "bind", bind_dn_template: "uid={local},ou=users,dc={domain_dc}" }),
      );
      try {
        assert.deepEqual(await bindAuth.verifyPassword("alice@company.com", "Alice-Pass-4"), {
          ok: true,
          email: "alice@company.com",
          domain: "company.com",
          backend: "ldap",
        });
        const jane = await bindAuth.verifyPassword("Jane.Roe@example.com", "Jane-Roe-Pass-2");
        assert.equal(jane.ok && jane.email, "jane.roe@example.com");
        const wrong = await bindAuth.verifyPassword("alice@company.com", "nope");
        assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
        const locked = await bindAuth.verifyPassword("locked@example.com", "Locked-Pass-3");
        assert.equal(!locked.ok && locked.reason, "account_disabled");
        // DN metacharacters in the local part cannot climb out of the RDN.
        const injected = await bindAuth.verifyPassword(
          "x,ou=services,dc=example,dc=com@example.com",
          "whatever",
        );
        assert.equal(!injected.ok && injected.reason, "invalid_credentials");
      } finally {
        await bindAuth.close();
      }
    });

    await t.step("bind mode without a service account", async () => {
      const anon = new LdapAuthenticator(
        slapd.ldapConfig({ mode: "bind", bind_dn: "", bind_password: "" }),
      );
      try {
        const ok = await anon.verifyPassword("john.doe@example.com", "John-Doe-Pass-1");
        assert.equal(ok.ok && ok.email, "john.doe@example.com");
        const wrong = await anon.verifyPassword("john.doe@example.com", "bad");
        assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
      } finally {
        await anon.close();
      }
    });

    await t.step("per-domain bases and a custom filter", async () => {
      const custom = new LdapAuthenticator(slapd.ldapConfig({
        domains: { "Company.COM": { base_dn: "dc=company,dc=com" } },
        user_filter: "(&(objectClass=posixAccount)(uid={local}))",
      }));
      try {
        const alice = await custom.verifyPassword("alice@company.com", "Alice-Pass-4");
        assert.equal(alice.ok && alice.email, "alice@company.com");
        const john = await custom.verifyPassword("john.doe@example.com", "John-Doe-Pass-1");
        assert.equal(john.ok && john.email, "john.doe@example.com");
      } finally {
        await custom.close();
      }
    });

    await t.step("a wrong service password is a temporary failure, not a user error", async () => {
      const misconfigured = new LdapAuthenticator(
        slapd.ldapConfig({ bind_password: "not-the-service-password" }),
      );
      try {
        const result = await misconfigured.verifyPassword(
          "john.doe@example.com",
          "John-Doe-Pass-1",
        );
        assert.equal(!result.ok && result.reason, "temporary_failure");
      } finally {
        await misconfigured.close();
      }
    });

    await t.step("LDAPS with the test CA", async () => {
      const ldaps = new LdapAuthenticator(slapd.ldapConfig({ url: slapd.ldapsUrl }), {
        caPem: slapd.caPem,
      });
      try {
        const result = await ldaps.verifyPassword("alice@company.com", "Alice-Pass-4");
        assert.equal(result.ok, true);
      } finally {
        await ldaps.close();
      }
    });

    await t.step("StartTLS with the test CA", async () => {
      const starttls = new LdapAuthenticator(slapd.ldapConfig({ starttls: true }), {
        caPem: slapd.caPem,
      });
      try {
        const result = await starttls.verifyPassword("john.doe@example.com", "John-Doe-Pass-1");
        assert.equal(result.ok, true);
        const wrong = await starttls.verifyPassword("john.doe@example.com", "nope");
        assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
      } finally {
        await starttls.close();
      }
    });

    await t.step("a certificate from an unknown CA is refused (temporary_failure)", async () => {
      for (const overrides of [{ url: slapd.ldapsUrl }, { starttls: true }]) {
        const untrusting = new LdapAuthenticator(slapd.ldapConfig(overrides));
        try {
          const result = await untrusting.verifyPassword("alice@company.com", "Alice-Pass-4");
          assert.equal(!result.ok && result.reason, "temporary_failure", JSON.stringify(overrides));
        } finally {
          await untrusting.close();
        }
      }
    });
  } finally {
    await auth.close();
  }
});
