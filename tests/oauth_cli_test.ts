/**
 * `relay oauth login` against a running authorization server: the command
 * prints (or "opens") the authorization URL; a simulated user fetches the
 * login page, posts the form and follows the redirect to the command's
 * loopback listener; the command prints a token the relay accepts.
 */
import assert from "node:assert/strict";
import type { PasswordAuthenticator } from "../src/auth/authenticator.ts";
import { runOAuthCommand } from "../src/cli/oauth.ts";
import { oauthSchema } from "../src/config/oauth_schema.ts";
import { startOAuthServer, verifySecretHash } from "../src/oauth/mod.ts";

const authenticator: PasswordAuthenticator = {
  name: "test",
  verifyPassword: (username, password) =>
    Promise.resolve(
      username === "alice@example.com" && password === "pw-alice"
        ? { ok: true, email: username, domain: "example.com", backend: "test" }
        : { ok: false, reason: "invalid_credentials" },
    ),
  close: () => Promise.resolve(),
};

/** Plays the person at the browser: sign in on the page, follow the redirect. */
async function signInAt(authorizeUrl: string): Promise<void> {
  const page = await fetch(authorizeUrl);
  const html = await page.text();
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)![1];
  const posted = await fetch(new URL(authorizeUrl).origin + new URL(authorizeUrl).pathname, {
    method: "POST",
    redirect: "manual",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      cookie: page.headers.get("set-cookie")!.split(";")[0],
    },
    body: new URLSearchParams({
      request: field("request"),
      csrf: field("csrf"),
      email: "alice@example.com",
      password: "pw-alice",
    }),
  });
  await posted.body?.cancel();
  assert.equal(posted.status, 303);
  const landing = await fetch(posted.headers.get("location")!);
  assert.match(await landing.text(), /Signed in/);
}

async function withServer(
  body: (
    config: ReturnType<typeof oauthSchema.parse>,
    verify: (t: string) => Promise<boolean>,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const config = oauthSchema.parse({
    listen: "127.0.0.1:0",
    issuer: "http://127.0.0.1:0",
    keys_file: `${dir}/keys.json`,
  });
  const server = await startOAuthServer({ config, authenticator });
  try {
    await body(
      { ...config, issuer: server.issuer },
      async (token) => (await server.verifier.verifyBearer("alice@example.com", token)).ok,
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("oauth login --no-browser prints the URL, then the token as JSON", async () => {
  await withServer(async (oauth, verify) => {
    const stdout: string[] = [];
    let browser: Promise<void> | null = null;
    const code = await runOAuthCommand(
      ["login", "--email", "alice@example.com", "--no-browser", "--json"],
      { oauth },
      {
        stdout: (text) => stdout.push(text),
        stderr: (text) => {
          const url = /https?:\/\/\S+\/oauth2\/authorize\?\S+/.exec(text)?.[0];
          if (url) browser = signInAt(url);
        },
        openBrowser: () => Promise.reject(new Error("must not open a browser")),
        timeoutMs: 10_000,
      },
    );
    await browser;
    assert.equal(code, 0);
    const result = JSON.parse(stdout[0]);
    assert.equal(result.token_type, "Bearer");
    assert.equal(result.scope, "smtp.send");
    assert.ok(result.refresh_token);
    assert.ok(await verify(result.access_token));
  });
});

Deno.test("oauth login opens the browser and prints only the access token", async () => {
  await withServer(async (oauth, verify) => {
    const stdout: string[] = [];
    let opened = "";
    const code = await runOAuthCommand(
      ["login", "--email", "alice@example.com"],
      { oauth },
      {
        stdout: (text) => stdout.push(text),
        stderr: () => {},
        openBrowser: async (url) => {
          opened = url;
          await signInAt(url);
        },
        timeoutMs: 10_000,
      },
    );
    assert.equal(code, 0);
    const url = new URL(opened);
    assert.equal(url.searchParams.get("code_challenge_method"), "S256");
    assert.equal(url.searchParams.get("client_id"), "thunderbird-email-client");
    assert.match(url.searchParams.get("redirect_uri")!, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    assert.equal(stdout.length, 1);
    assert.ok(await verify(stdout[0]));
  });
});

Deno.test("oauth login gives up after the timeout; usage errors exit 2", async () => {
  await withServer(async (oauth) => {
    const stderr: string[] = [];
    const io = { stdout: () => {}, stderr: (t: string) => stderr.push(t), timeoutMs: 50 };
    assert.equal(
      await runOAuthCommand(["login", "--email", "a@example.com", "--no-browser"], { oauth }, io),
      1,
    );
    assert.match(stderr.at(-1)!, /timed out/);
    assert.equal(await runOAuthCommand(["login"], { oauth }, io), 2);
    assert.equal(await runOAuthCommand(["frobnicate"], { oauth }, io), 2);
  });
});

Deno.test("oauth keys rotate and list; hash-secret", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const oauth = oauthSchema.parse({ keys_file: `${dir}/keys.json` });
    const stdout: string[] = [];
    const io = { stdout: (t: string) => stdout.push(t), stderr: () => {} };
    assert.equal(await runOAuthCommand(["keys", "rotate"], { oauth }, io), 0);
    const rotated = stdout[0];
    stdout.length = 0;
    assert.equal(await runOAuthCommand(["keys", "list"], { oauth }, io), 0);
    assert.equal(stdout.length, 2, "the first start's key and the rotated one");
    assert.equal(stdout[1], rotated);

    stdout.length = 0;
    const hashIo = { ...io, readStdin: () => Promise.resolve("client-secret\n") };
    assert.equal(await runOAuthCommand(["hash-secret"], { oauth }, hashIo), 0);
    assert.ok(await verifySecretHash("client-secret", stdout[0]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
