/**
 * `relay user ... --ldap` (runLdapUserCommand) against a stock slapd (no
 * ppolicy, no pw-sha2, as most installations): add, passwd, remove,
 * --create-ou, uidNumber allocation under concurrency; passwords set with
 * Password Modify so slapd hashes them itself; the userPassword fallback with
 * a scheme slapd cannot verify is caught by the verification bind and undone.
 */
import assert from "node:assert/strict";
import { LdapAuthenticator, verifySaltedSha } from "../src/auth/ldap/mod.ts";
import { cli } from "./support/user_ldap_cli.ts";
import { startSlapd } from "./support/slapd.ts";

Deno.test("relay user --ldap against slapd", async (t) => {
  await using slapd = await startSlapd({ stock: true, emptyDomains: ["newco.org"] });
  // The admin commands bind as the directory admin; searches in verify use the service account.
  const config = slapd.ldapConfig({
    admin: { bind_dn: slapd.adminDn, bind_password: slapd.adminPassword },
  });
  const auth = new LdapAuthenticator(config);
  const verify = (email: string, password: string) => auth.verifyPassword(email, password);
  try {
    await t.step(
      "add creates an entry that can log in; the password is stored hashed",
      async () => {
        const password = "Smith-Pass-7 ünïcode";
        const run = await cli(
          [
            "add",
            "--ldap",
            "John.Smith@Example.com",
            "--first",
            "John",
            "--last",
            "Smith",
            "--password-stdin",
          ],
          config,
          `${password}\n`,
        );
        assert.equal(run.code, 0, run.err);
        assert.match(
          run.out,
          /added john\.smith@example\.com as uid=john\.smith,ou=users,dc=example,dc=com/,
        );
        assert.match(run.out, /password hashed by the directory \(Password Modify\), checked/);
        assert.ok(!run.out.includes(password) && !run.err.includes(password));
        assert.deepEqual(await verify("john.smith@example.com", password), {
          ok: true,
          email: "john.smith@example.com",
          domain: "example.com",
          backend: "ldap",
        });
        const [entry] = await slapd.search("dc=example,dc=com", "(uid=john.smith)", ["*"]);
        const stored = String(entry.userPassword);
        // slapd's own default scheme: it hashed the password, not the relay.
        assert.match(stored, /^\{SSHA\}[A-Za-z0-9+/]+=*$/);
        assert.ok(!stored.includes(password));
        assert.ok(verifySaltedSha(stored, password));
        assert.deepEqual(
          (entry.objectClass as string[]).map((c) => c.toLowerCase()).sort(),
          ["inetorgperson", "posixaccount", "top"],
        );
        assert.equal(entry.mail, "john.smith@example.com");
        assert.equal(entry.cn, "John Smith");
        assert.equal(entry.givenName, "John");
        assert.equal(entry.sn, "Smith");
        assert.equal(entry.homeDirectory, "/home/example.com/john.smith");
        assert.equal(entry.loginShell, "/usr/sbin/nologin");
        assert.ok(Number(entry.uidNumber) >= 10000, `uidNumber ${entry.uidNumber}`);
        assert.equal(entry.gidNumber, entry.uidNumber);
      },
    );

    await t.step("add refuses an existing user", async () => {
      const run = await cli(
        [
          "add",
          "--ldap",
          "john.smith@example.com",
          "--first",
          "J",
          "--last",
          "S",
          "--password-stdin",
        ],
        config,
        "x\n",
      );
      assert.equal(run.code, 1);
      assert.match(run.err, /already exists/);
    });

    await t.step("concurrent adds get distinct uidNumbers", async () => {
      const names = ["u1", "u2", "u3", "u4", "u5"];
      const runs = await Promise.all(names.map((name) =>
        cli(
          [
            "add",
            "--ldap",
            `${name}@company.com`,
            "--first",
            name,
            "--last",
            "Test",
            "--password-stdin",
          ],
          config,
          `Pass-${name}\n`,
        )
      ));
      for (const run of runs) assert.equal(run.code, 0, run.err);
      const entries = await slapd.search("dc=company,dc=com", "(uid=u*)", ["uid", "uidNumber"]);
      const numbers = entries.map((e) => Number(e.uidNumber));
      assert.equal(numbers.length, 5);
      assert.equal(new Set(numbers).size, 5, `uidNumbers ${numbers}`);
      const [john] = await slapd.search("dc=example,dc=com", "(uid=john.smith)", ["uidNumber"]);
      assert.ok(!numbers.includes(Number(john.uidNumber)));
      const [counter] = await slapd.search("dc=example,dc=com", "(cn=uidNext)", ["uidNumber"]);
      assert.equal(Number(counter.uidNumber), Math.max(...numbers) + 1);
    });

    await t.step("passwd changes the password", async () => {
      const run = await cli(
        ["passwd", "--ldap", "john.smith@example.com", "--password-stdin"],
        config,
        "New-Pass-8\r\n",
      );
      assert.equal(run.code, 0, run.err);
      const old = await verify("john.smith@example.com", "Smith-Pass-7 ünïcode");
      assert.equal(!old.ok && old.reason, "invalid_credentials");
      assert.equal((await verify("john.smith@example.com", "New-Pass-8")).ok, true);
      const [entry] = await slapd.search("dc=example,dc=com", "(uid=john.smith)", ["userPassword"]);
      assert.match(String(entry.userPassword), /^\{SSHA\}/);
    });

    await t.step("passwd asks twice on a terminal and refuses a mismatch", async () => {
      const answers = ["One-Pass-9", "Other-Pass-9"];
      const run = await cli(["passwd", "--ldap", "john.smith@example.com"], config, "", {
        isTerminal: true,
        promptPassword: () => Promise.resolve(answers.shift() ?? null),
      });
      assert.equal(run.code, 1);
      assert.match(run.err, /passwords do not match/);
      assert.equal((await verify("john.smith@example.com", "New-Pass-8")).ok, true);
      const noTerminal = await cli(["passwd", "--ldap", "john.smith@example.com"], config);
      assert.equal(noTerminal.code, 2);
      assert.match(noTerminal.err, /--password-stdin/);
    });

    await t.step("passwd and remove of an unknown user fail", async () => {
      const passwd = await cli(
        ["passwd", "--ldap", "ghost@example.com", "--password-stdin"],
        config,
        "x\n",
      );
      assert.equal(passwd.code, 1);
      assert.match(passwd.err, /no such user: ghost@example\.com/);
      const remove = await cli(["remove", "--ldap", "ghost@example.com"], config);
      assert.equal(remove.code, 1);
      assert.match(remove.err, /no such user/);
    });

    await t.step("remove deletes the entry", async () => {
      const run = await cli(["remove", "--ldap", "john.smith@example.com"], config);
      assert.equal(run.code, 0, run.err);
      assert.match(run.out, /removed uid=john\.smith,ou=users,dc=example,dc=com/);
      const gone = await verify("john.smith@example.com", "New-Pass-8");
      assert.equal(!gone.ok && gone.reason, "invalid_credentials");
      assert.deepEqual(await slapd.search("dc=example,dc=com", "(uid=john.smith)"), []);
    });

    await t.step("--create-ou creates a new domain's tree", async () => {
      const args = [
        "add",
        "--ldap",
        "boss@newco.org",
        "--first",
        "Big",
        "--last",
        "Boss",
        "--password-stdin",
      ];
      const without = await cli(args, config, "Boss-Pass-1\n");
      assert.equal(without.code, 1);
      assert.match(without.err, /ou=users,dc=newco,dc=org does not exist \(use --create-ou/);
      const run = await cli([...args, "--create-ou"], config, "Boss-Pass-1\n");
      assert.equal(run.code, 0, run.err);
      assert.match(
        run.out,
        /created dc=newco,dc=org\ncreated ou=users,dc=newco,dc=org\nadded boss@newco\.org/,
      );
      const [suffix] = await slapd.search("dc=newco,dc=org", "(objectClass=organization)", [
        "o",
        "dc",
      ]);
      assert.equal(suffix.o, "newco.org");
      assert.deepEqual(await verify("boss@newco.org", "Boss-Pass-1"), {
        ok: true,
        email: "boss@newco.org",
        domain: "newco.org",
        backend: "ldap",
      });
      const show = await cli(["show", "--ldap", "boss@newco.org"], config);
      assert.equal(show.code, 0, show.err);
      assert.match(
        show.out,
        /^dn: uid=boss,ou=users,dc=newco,dc=org\nmail: boss@newco\.org\nuidNumber: \d+\naccount: active$/,
      );
    });

    await t.step(
      "userPassword fallback: a scheme slapd cannot verify is refused and undone",
      async () => {
        const args = ["add", "--ldap", "dave@company.com", "--first", "Dave", "--last", "D"];
        const sha512 = slapd.ldapConfig({
          admin: {
            bind_dn: slapd.adminDn,
            bind_password: slapd.adminPassword,
            password_method: "user_password",
          },
        });
        const refused = await cli([...args, "--password-stdin"], sha512, "Dave-Pass-1\n");
        assert.equal(refused.code, 1);
        assert.match(
          refused.err,
          /with the new password failed \(the change was undone\); likely cause: the directory cannot verify \{SSHA512\} values \(OpenLDAP needs the pw-sha2 module\): set \[ldap\.admin\] password_scheme = "SSHA"/,
        );
        assert.deepEqual(await slapd.search("dc=company,dc=com", "(uid=dave)"), []);

        const ssha = slapd.ldapConfig({
          admin: {
            bind_dn: slapd.adminDn,
            bind_password: slapd.adminPassword,
            password_method: "user_password",
            password_scheme: "SSHA",
          },
        });
        const added = await cli([...args, "--password-stdin"], ssha, "Dave-Pass-1\n");
        assert.equal(added.code, 0, added.err);
        assert.match(added.out, /password stored as \{SSHA\}, checked with a bind/);
        assert.equal((await verify("dave@company.com", "Dave-Pass-1")).ok, true);

        // passwd with the unverifiable scheme: refused, and the old password still works.
        const passwd = await cli(
          ["passwd", "--ldap", "dave@company.com", "--password-stdin"],
          sha512,
          "Dave-Pass-2\n",
        );
        assert.equal(passwd.code, 1);
        assert.match(passwd.err, /\(the change was undone\)/);
        assert.equal((await verify("dave@company.com", "Dave-Pass-1")).ok, true);
        assert.equal((await verify("dave@company.com", "Dave-Pass-2")).ok, false);
      },
    );

    await t.step("usage errors exit 2", async () => {
      for (
        const args of [
          ["add", "--ldap", "a@example.com", "--password-stdin"],
          ["add", "--ldap", "--first", "A", "--last", "B"],
          ["remove", "--ldap", "a@example.com", "--first", "A"],
          ["frobnicate", "--ldap", "a@example.com"],
          ["show", "--ldap", "a@example.com", "--bogus"],
          ["show", "--ldap", "a@example.com", "--bind-dn", "cn=x"],
        ]
      ) {
        const run = await cli(args, config);
        assert.equal(run.code, 2, `${args.join(" ")}: ${run.err}`);
      }
    });

    await t.step("wrong admin credentials are reported without the password", async () => {
      const file = await Deno.makeTempFile({ dir: slapd.dir });
      await Deno.writeTextFile(file, "Wrong-Admin-Secret\n");
      const run = await cli(
        [
          "show",
          "--ldap",
          "alice@company.com",
          "--bind-dn",
          slapd.adminDn,
          "--bind-password-file",
          file,
        ],
        config,
      );
      assert.equal(run.code, 1);
      assert.match(run.err, /invalid admin DN or password/);
      assert.ok(!run.err.includes("Wrong-Admin-Secret"));
      const right = await cli(["show", "--ldap", "alice@company.com"], config);
      assert.equal(right.code, 0, right.err);
    });
  } finally {
    await auth.close();
  }
});
