/**
 * Lockouts an attacker cannot turn against real users, tried as an attacker
 * would: real SMTPS connections (nodemailer) from many loopback addresses
 * (127.0.x.y), exact replies and the audit events that name each scope;
 * and the operator's view through the admin listener and `relay limits`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { startOAuthTestRelay, startTestRelay, type TestRelay } from "./support/relay.ts";

const ALICE = { user: "alice@example.com", pass: "alice-secret-1" };

type Auth = { user: string; pass: string } | { type: "OAuth2"; user: string; accessToken: string };

/** Logs in over SMTPS from `localAddress`: "235" or the refusal's code and text. */
async function login(t: TestRelay, localAddress: string, auth: Auth): Promise<string> {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: t.smtpsPort,
    secure: true,
    localAddress,
    auth,
    tls: { ca: [t.caPem], servername: "localhost" },
  });
  try {
    await transport.verify();
    return "235";
  } catch (error) {
    const { responseCode, response } = error as { responseCode?: number; response?: string };
    if (responseCode === undefined) throw error;
    return response ?? String(responseCode);
  } finally {
    transport.close();
  }
}

const code = (reply: string) => reply.slice(0, 3);

function rateLimitScopes(t: TestRelay, ip: string): unknown[] {
  return t.audit.events.filter((e) => e.event === "rate_limit" && e.ip === ip).map((e) => e.scope);
}

Deno.test("a brute force from address A does not lock the owner out from her familiar address B", async () => {
  const t = await startTestRelay({ config: { rate_limit: { enabled: true } } });
  try {
    // Alice logs in from home (B) as usual: that network becomes familiar.
    assert.equal(await login(t, "127.0.2.2", ALICE), "235");
    // An attacker guesses her password from two addresses: 10 failures put her account under attack.
    for (const a of ["127.0.3.1", "127.0.4.1"]) {
      const replies = [];
      for (let i = 0; i < 6; i++) {
        replies.push(await login(t, a, { user: ALICE.user, pass: `guess-${a}-${i}` }));
      }
      assert.equal(code(replies[0]), "535");
      assert.match(replies.at(-1)!, /^421 4\.7\.0 Too many authentication failures/);
    }
    // From A, even the right password is refused now...
    assert.equal(code(await login(t, "127.0.3.1", ALICE)), "421");
    assert.ok(rateLimitScopes(t, "127.0.3.1").includes("pair"));
    // ...and so is any other address she never used: the account is under attack.
    assert.equal(code(await login(t, "127.0.6.1", ALICE)), "421");
    assert.ok(rateLimitScopes(t, "127.0.6.1").includes("account-unfamiliar"));
    // Alice at home, and anywhere on her home network, logs in.
    assert.equal(await login(t, "127.0.2.2", ALICE), "235");
    assert.equal(await login(t, "127.0.2.77", ALICE), "235");
    // Bob, on another domain, is untouched.
    assert.equal(
      await login(t, "127.0.6.1", { user: "bob@company.com", pass: "bob-secret-2" }),
      "235",
    );
  } finally {
    await t.close();
  }
});

Deno.test("a spray of unknown users slows the domain down but does not block its real users", async () => {
  const t = await startTestRelay({
    config: { rate_limit: { enabled: true, per_domain_per_minute: 40, domain_delay_ms: 100 } },
  });
  try {
    // 100 guesses at unknown users from 12 addresses, 8 or 9 each (below the spray limit).
    await Promise.all(Array.from({ length: 12 }, async (_, a) => {
      for (let i = a; i < 100; i += 12) {
        const reply = await login(t, `127.0.7.${a + 1}`, {
          user: `user${i}@example.com`,
          pass: "x",
        });
        assert.equal(code(reply), "535", `user${i}`);
      }
    }));
    assert.ok(
      t.audit.events.some((e) =>
        e.event === "rate_limit" && e.scope === "domain-slow" && e.action === "delayed"
      ),
    );
    // Alice, from an address she never used, still logs in (slowed, not refused).
    assert.equal(await login(t, "127.0.8.1", ALICE), "235");
    assert.ok(!t.audit.events.some((e) => e.event === "rate_limit" && e.action === "refused"));
  } finally {
    await t.close();
  }
});

Deno.test("8 parallel connections get no more guesses than the limit", async () => {
  const t = await startTestRelay({ config: { rate_limit: { enabled: true, per_minute: 5 } } });
  try {
    const replies = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) => login(t, "127.0.9.1", { user: ALICE.user, pass: `p${i}` }),
      ),
    );
    const verified = t.audit.events.filter((e) =>
      e.event === "auth_attempt" && e.ip === "127.0.9.1" && e.success === false
    );
    assert.equal(verified.length, 5, "password checks that ran");
    assert.equal(replies.filter((r) => code(r) === "535").length, 5);
    assert.equal(replies.filter((r) => code(r) === "421").length, 3);
  } finally {
    await t.close();
  }
});

/** A relay with the embedded OAuth server (login page, bearer tokens) and lockouts on. */
const startOAuthRelay = () => startOAuthTestRelay({ rate_limit: { enabled: true } });

/** Posts the OAuth login form once (from 127.0.0.1); the HTTP status. */
async function loginPage(t: TestRelay, email: string, password: string): Promise<number> {
  const issuer = t.relay.oauth!.issuer;
  const authorize = new URL(`${issuer}/oauth2/authorize`);
  authorize.search = new URLSearchParams({
    response_type: "code",
    client_id: "thunderbird-email-client",
    redirect_uri: "http://127.0.0.1:9/callback",
    code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    code_challenge_method: "S256",
  }).toString();
  const page = await fetch(authorize);
  const html = await page.text();
  assert.equal(page.status, 200, html);
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)![1];
  const response = await fetch(authorize.origin + authorize.pathname, {
    method: "POST",
    redirect: "manual",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      cookie: page.headers.get("set-cookie")!.split(";")[0],
    },
    body: new URLSearchParams({ request: field("request"), csrf: field("csrf"), email, password }),
  });
  await response.body?.cancel();
  return response.status;
}

Deno.test("the OAuth login page and SMTP AUTH share one lockout", async () => {
  const t = await startOAuthRelay();
  try {
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push(await loginPage(t, ALICE.user, `guess-${i}`));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    assert.ok(
      t.audit.events.some((e) =>
        e.event === "rate_limit" && e.port === "oauth" && e.scope === "pair" &&
        e.action === "refused"
      ),
    );
    // The pair (127.0.0.1, alice) is blocked over SMTP too, even with the right password...
    assert.match(await login(t, "127.0.0.1", ALICE), /^421 4\.7\.0 /);
    // ...while alice elsewhere logs in on both.
    assert.equal(await login(t, "127.0.0.2", ALICE), "235");
  } finally {
    await t.close();
  }
});

Deno.test("bogus bearer tokens block tokens from that address, not the password", async () => {
  const t = await startOAuthRelay();
  try {
    const bogus = { type: "OAuth2" as const, user: ALICE.user, accessToken: "bogus.token.value" };
    // nodemailer tries a refused token twice per connection; a block closes the connection.
    for (let i = 0; i < 4; i++) await login(t, "127.0.10.1", bogus).catch(() => "closed");
    assert.equal(code(await login(t, "127.0.10.1", bogus)), "421");
    const checked = t.audit.events.filter((e) =>
      e.event === "token_validation" && e.ip === "127.0.10.1" && e.success === false
    );
    assert.equal(checked.length, 5, "token checks that ran");
    assert.ok(rateLimitScopes(t, "127.0.10.1").includes("token"));
    // The password still works from that very address.
    assert.equal(await login(t, "127.0.10.1", ALICE), "235");
  } finally {
    await t.close();
  }
});

Deno.test("relay limits show and clear a block through the admin listener; trusted networks are exempt", async () => {
  const t = await startTestRelay({
    config: { rate_limit: { enabled: true }, limits: { trusted_networks: ["127.0.13.0/24"] } },
  });
  try {
    for (let i = 0; i < 10; i++) {
      await login(t, "127.0.12.1", { user: `user${i}@example.com`, pass: "x" });
      await login(t, "127.0.13.1", { user: `user${i}@example.com`, pass: "x" });
    }
    assert.equal(code(await login(t, "127.0.12.1", ALICE)), "421");
    assert.equal(await login(t, "127.0.13.1", ALICE), "235");
    const url = t.relay.admin!.url;
    const cli = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "main.ts", "limits", ...args],
        cwd: join(import.meta.dirname!, ".."),
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    const shown = await cli("show", "127.0.12.1", "--url", url);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^127\.0\.12\.1: address blocked for \d+ s$/m);
    const cleared = await cli("clear", "127.0.12.1", "--url", url);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.match(cleared.stdout, /lifted 1 block/);
    assert.equal(await login(t, "127.0.12.1", ALICE), "235");
    const none = await cli("show", "127.0.12.1", "--url", url);
    assert.match(none.stdout, /^127\.0\.12\.1: no block$/m);
    const help = await cli("--help");
    assert.match(help.stdout, /relay limits show\|clear ADDRESS\|ACCOUNT/);
  } finally {
    await t.close();
  }
});
