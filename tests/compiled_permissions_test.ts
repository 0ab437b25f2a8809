/**
 * The compiled relay's permission set, proven with `deno run`: the flags of
 * deno.json's `compile` task (parsed from it, nothing added), a working
 * directory holding only config/, certs/, data/ and logs/, and the CLI and
 * `serve` run the way an operator runs the binary. `deno run` reads the
 * static module graph without read permission; only workers and dynamic
 * imports ask for it, so this is the closest this machine gets to running
 * the binary (`deno compile` cannot finish here; see FACTS.md).
 *
 * Exercised: `user add|list`, `check`, certificate generation, AUTH PLAIN
 * through the argon2 worker pool on both ports, LDAP over TLS with its CA in
 * certs/, spool and delivery to data/outbox, the audit trail in logs/, the
 * OAuth login page and XOAUTH2 with a token signed by the key in data/oauth,
 * SIGHUP reload, `queue stats`, `oauth keys list`, `certs show`, SIGTERM.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  authenticated,
  greeted,
  queueId,
  type RawTarget,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { signInOverHttp } from "./support/oauth_flow.ts";
import { startSlapd } from "./support/slapd.ts";
import { startServe } from "./support/serve_process.ts";
import { until } from "./support/until.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");
const decoder = new TextDecoder();

/**
 * The runtime flags of the `compile` task: everything but `--output X`,
 * `--include X`, `--exclude X` (what goes into the binary) and the script.
 */
export async function compileRunFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const words: string[] = config.tasks.compile.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "compile"]);
  const flags: string[] = [];
  for (let i = 2; i < words.length; i++) {
    const word = words[i];
    if (word === "--output" || word === "-o" || word === "--include" || word === "--exclude") i++;
    else if (word.endsWith(".ts")) break;
    else flags.push(word);
  }
  return flags;
}

async function cli(cwd: string, flags: string[], args: string[], stdin = "") {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, MAIN, ...args],
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("the compile task's permissions: CLI and serve from a folder with only config/, certs/, data/, logs/", async () => {
  const flags = await compileRunFlags();
  assert.ok(flags.some((flag) => flag.startsWith("--allow-read=")), flags.join(" "));
  const cwd = await Deno.makeTempDir({ prefix: "relay_compiled_" });
  for (const dir of ["config", "certs", "data", "logs"]) await Deno.mkdir(join(cwd, dir));
  // LDAP over TLS, its CA kept in certs/ as an operator of the binary would.
  await using slapd = await startSlapd();
  await Deno.copyFile(slapd.caFile, join(cwd, "certs", "ldap-ca.pem"));
  const q = JSON.stringify;
  await Deno.writeTextFile(
    join(cwd, "config", "relay.toml"),
    `[auth]
backends = ["file", "ldap"]
[ldap]
url = ${q(slapd.ldapsUrl)}
bind_dn = ${q(slapd.serviceDn)}
bind_password = ${q(slapd.servicePassword)}
ca = "certs/ldap-ca.pem"
[server]
hostname = "localhost"
# Sessions on two workers, loaded from their bundle (no read access to src/), whatever the cores.
workers = 2
[smtps]
listen = "127.0.0.1:0"
[submission]
listen = "127.0.0.1:0"
[oauth]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[auth.argon2]
memory_kib = 64
iterations = 1
[tls]
reload = false
[log]
format = "json"
`,
  );

  const added = await cli(
    cwd,
    flags,
    ["user", "add", "ann@example.com", "--password-stdin"],
    "ann-pw-1\n",
  );
  assert.equal(added.code, 0, added.stderr);
  const users = await cli(cwd, flags, ["user", "list"]);
  assert.match(users.stdout, /^ann@example\.com\tARGON2ID\tconfig\/users\/example\.com\.txt$/m);
  assert.equal((await cli(cwd, flags, ["check"])).code, 0);
  // DKIM keys written and read under config/ with the same permissions.
  const keys = await cli(cwd, flags, ["dkim", "generate", "--domain", "example.com"]);
  assert.equal(keys.code, 0, keys.stderr);

  const relay = await startServe({ args: [...flags, MAIN, "serve"], cwd });
  const output = relay.output;
  try {
    const [, smtps, submission] = /smtps 127\.0\.0\.1:(\d+), submission 127\.0\.0\.1:(\d+)/
      .exec(output())!;
    // Certificate generation ran under the narrow permissions.
    const target: RawTarget = {
      smtpsPort: Number(smtps),
      submissionPort: Number(submission),
      caPem: await Deno.readTextFile(join(cwd, "certs", "ca.crt")),
    };
    // AUTH PLAIN goes through the argon2 worker pool: 235, not 454.
    for (const kind of ["smtps", "submission"] as const) {
      const client = await authenticated(target, kind, {
        email: "ann@example.com",
        password: "ann-pw-1",
      });
      const reply = await transaction(client, {
        from: "ann@example.com",
        to: ["bob@dest.example"],
        data: `From: ann@example.com\r\nSubject: via ${kind}\r\n\r\ncompiled permissions\r\n.\r\n`,
      });
      const id = queueId(reply);
      client.close();
      const stored = decoder.decode(await waitForMessage(join(cwd, "data", "outbox"), id));
      assert.match(stored, new RegExp(`Subject: via ${kind}\r\n\r\ncompiled permissions\r\n$`));
      assert.match(
        stored,
        /^DKIM-Signature: v=1; a=ed25519-sha256;[^]*\r\nDKIM-Signature: v=1; a=rsa-sha256;/,
      );
    }
    await until(
      "the audit line of the successful AUTH",
      async () =>
        /"event":"auth_attempt".*"success":true/.test(
          await Deno.readTextFile(join(cwd, "logs", "audit.jsonl")),
        ),
    );

    // A directory user: ldaps with the CA read from certs/.
    const john = await authenticated(target, "submission", {
      email: "john.doe@example.com",
      password: "John-Doe-Pass-1",
    });
    john.close();

    // OAuth: the login page checks the password through the same workers; the
    // token (signed with the key file under data/) then authenticates XOAUTH2.
    const [, issuer] = /\(issuer (http:\/\/localhost:\d+)\)/.exec(output())!;
    const tokens = await signInOverHttp({
      issuer: issuer.replace("localhost", "127.0.0.1"),
      redirectUri: "http://127.0.0.1:9/callback",
      email: "ann@example.com",
      password: "ann-pw-1",
    });
    const oauthClient = await greeted(target, "smtps");
    const xoauth2 = btoa(`user=ann@example.com\x01auth=Bearer ${tokens.access_token}\x01\x01`);
    assert.equal((await oauthClient.command(`AUTH XOAUTH2 ${xoauth2}`)).code, 235);
    oauthClient.close();

    relay.kill("SIGHUP");
    await until("the SIGHUP reload", () => output().includes("TLS certificate reloaded"));

    // The CLI beside the running relay.
    const stats = await cli(cwd, flags, ["queue", "stats"]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, /^messages: +0 /m);
    const keys = await cli(cwd, flags, ["oauth", "keys", "list"]);
    assert.equal(keys.code, 0, keys.stderr);
    assert.match(keys.stdout, /^\S{20,}/);
    const certs = await cli(cwd, flags, ["certs", "show"]);
    assert.match(certs.stdout, /^Subject: +CN=localhost/m);

    assert.equal((await relay.stop()).code, 0, output());
    assert.doesNotMatch(output(), /Requires read access|PermissionDenied|NotCapable/);
  } finally {
    await relay[Symbol.asyncDispose]();
    await Deno.remove(cwd, { recursive: true });
  }
});
