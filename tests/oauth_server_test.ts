/**
 * The authorization server over real HTTP, without a browser: the login
 * form is fetched and posted like a browser would (CSRF field + cookie).
 * Covers the refusals: open-redirect protection, PKCE, code reuse and
 * binding, CSRF, rate limiting, disabled domains, client authentication,
 * body limits, registration, and the key file.
 */
import assert from "node:assert/strict";
import type { AuthResult, PasswordAuthenticator } from "../src/auth/authenticator.ts";
import { type OAuthConfig, oauthSchema } from "../src/config/oauth_schema.ts";
import {
  hashSecretSsha512,
  type OAuthServer,
  type RateLimitKey,
  s256,
  startOAuthServer,
} from "../src/oauth/mod.ts";

const PASSWORD = "correct horse battery";
const WEBMAIL_SECRET = "webmail-secret-abcdefghijklmnop";
const WEBMAIL_REDIRECT = "https://webmail.example.com/oauth/callback";
const LOOPBACK = "http://127.0.0.1:4711/callback";
const VERIFIER = "a".repeat(20) + "-._~" + "b".repeat(30);

interface Fixture {
  server: OAuthServer;
  config: OAuthConfig;
  dir: string;
  events: Record<string, unknown>[];
  rateLimitCalls: RateLimitKey[];
  passwordChecks: string[];
  /** Moves the server's clock. */
  advance(ms: number): void;
}

interface FixtureOptions {
  config?: Record<string, unknown>;
  rateLimit?: (key: RateLimitKey) => Promise<boolean>;
  domainEnabled?: (domain: string) => boolean;
  /** The password backend's answer for a failed check. */
  failure?: AuthResult & { ok: false };
}

async function withServer(
  options: FixtureOptions,
  body: (fixture: Fixture) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  let offset = 0;
  const events: Record<string, unknown>[] = [];
  const rateLimitCalls: RateLimitKey[] = [];
  const passwordChecks: string[] = [];
  const authenticator: PasswordAuthenticator = {
    name: "test",
    verifyPassword(username, password) {
      passwordChecks.push(username);
      const known = ["alice@example.com", "carol@other.test"].includes(username);
      if (known && password === PASSWORD) {
        const domain = username.split("@")[1];
        return Promise.resolve({ ok: true, email: username, domain, backend: "test" });
      }
      return Promise.resolve(options.failure ?? { ok: false, reason: "invalid_credentials" });
    },
    close: () => Promise.resolve(),
  };
  const config = oauthSchema.parse({
    enabled: true,
    listen: "127.0.0.1:0",
    issuer: "http://127.0.0.1:0",
    keys_file: `${dir}/oauth/keys.json`,
    clients: [
      {
        id: "webmail",
        name: "Example Webmail",
        secret_hash: hashSecretSsha512(WEBMAIL_SECRET),
        redirect_uris: [WEBMAIL_REDIRECT],
        domains: ["example.com"],
      },
    ],
    ...options.config,
  });
  const server = await startOAuthServer({
    config,
    authenticator,
    audit: (event) => events.push(event),
    rateLimit: async (key) => {
      rateLimitCalls.push(key);
      return options.rateLimit ? await options.rateLimit(key) : true;
    },
    domainEnabled: options.domainEnabled,
    now: () => Date.now() + offset,
  });
  try {
    await body({
      server,
      config,
      dir,
      events,
      rateLimitCalls,
      passwordChecks,
      advance: (ms) => offset += ms,
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

interface AuthorizeParams {
  client_id?: string;
  redirect_uri?: string;
  code_challenge?: string;
  code_challenge_method?: string;
  response_type?: string;
  scope?: string;
  state?: string;
  prompt?: string;
}

function authorizeUrl(server: OAuthServer, params: AuthorizeParams): URL {
  const url = new URL(`${server.issuer}/oauth2/authorize`);
  const all: Record<string, string> = {
    response_type: "code",
    client_id: "thunderbird-email-client",
    redirect_uri: LOOPBACK,
    code_challenge: s256(VERIFIER),
    code_challenge_method: "S256",
    state: "xyz",
  };
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) delete all[key];
    else all[key] = value;
  }
  url.search = new URLSearchParams(all).toString();
  return url;
}

/** The login page: its hidden fields and cookie. */
async function openLogin(
  server: OAuthServer,
  params: AuthorizeParams = {},
): Promise<{ request: string; csrf: string; cookie: string; response: Response; html: string }> {
  const response = await fetch(authorizeUrl(server, params), { redirect: "manual" });
  const html = await response.text();
  assert.equal(response.status, 200, html);
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)![1];
  const cookie = response.headers.get("set-cookie")!.split(";")[0];
  return { request: field("request"), csrf: field("csrf"), cookie, response, html };
}

async function postLogin(
  server: OAuthServer,
  form: Record<string, string>,
  cookie: string | null,
): Promise<Response> {
  return await fetch(`${server.issuer}/oauth2/authorize`, {
    method: "POST",
    redirect: "manual",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(cookie ? { cookie } : {}),
    },
    body: new URLSearchParams(form),
  });
}

/** Signs alice in and returns the redirect's parameters. */
async function login(
  server: OAuthServer,
  params: AuthorizeParams = {},
  email = "alice@example.com",
): Promise<URLSearchParams> {
  const { request, csrf, cookie } = await openLogin(server, params);
  const response = await postLogin(server, { request, csrf, email, password: PASSWORD }, cookie);
  await response.body?.cancel();
  assert.equal(response.status, 303);
  return new URL(response.headers.get("location")!).searchParams;
}

async function tokenRequest(
  server: OAuthServer,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${server.issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

function exchange(server: OAuthServer, code: string, extra: Record<string, string> = {}) {
  return tokenRequest(server, {
    grant_type: "authorization_code",
    client_id: "thunderbird-email-client",
    code,
    redirect_uri: LOOPBACK,
    code_verifier: VERIFIER,
    ...extra,
  });
}

function basic(id: string, secret: string): Record<string, string> {
  return { authorization: "Basic " + btoa(`${id}:${secret}`) };
}

Deno.test("metadata, JWKS and the key file", async () => {
  await withServer({}, async ({ server, config, dir }) => {
    for (
      const path of ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
    ) {
      const response = await fetch(server.url + path);
      const doc = await response.json();
      assert.equal(doc.issuer, server.issuer);
      assert.equal(doc.token_endpoint, `${server.issuer}/oauth2/token`);
      assert.deepEqual(doc.code_challenge_methods_supported, ["S256"]);
      assert.equal(doc.registration_endpoint, undefined);
    }
    const jwks = await (await fetch(`${server.issuer}/oauth2/jwks`)).json();
    assert.equal(jwks.keys.length, 1);
    const [key] = jwks.keys;
    assert.equal(key.kty, "EC");
    assert.equal(key.alg, "ES256");
    assert.equal(key.d, undefined, "no private part published");

    const stat = await Deno.stat(config.keys_file);
    assert.equal(stat.mode! & 0o777, 0o600);
    const stored = JSON.parse(await Deno.readTextFile(`${dir}/oauth/keys.json`));
    assert.equal(stored.keys[0].kid, key.kid);
    assert.ok(stored.keys[0].d, "the file keeps the private key");
  });
});

Deno.test("authorization errors before a trusted redirect are pages, never redirects", async () => {
  await withServer({}, async ({ server }) => {
    const cases: [AuthorizeParams, RegExp][] = [
      [{ client_id: "nobody" }, /Unknown application/],
      [{ client_id: undefined }, /Unknown application/],
      // A public client may not go to a non-loopback address...
      [{ redirect_uri: "https://evil.example/cb" }, /Invalid redirect address/],
      // ...a confidential one only to its registered URI, exactly...
      [{ client_id: "webmail", redirect_uri: WEBMAIL_REDIRECT + "/x" }, /Invalid redirect/],
      [{ client_id: "webmail", redirect_uri: LOOPBACK }, /Invalid redirect address/],
      // ...and out-of-band only when allowed.
      [{ redirect_uri: "urn:ietf:wg:oauth:2.0:oob" }, /Invalid redirect address/],
    ];
    for (const [params, text] of cases) {
      const response = await fetch(authorizeUrl(server, params), { redirect: "manual" });
      assert.equal(response.status, 400);
      assert.equal(response.headers.get("location"), null);
      assert.match(response.headers.get("content-security-policy")!, /frame-ancestors 'none'/);
      assert.match(await response.text(), text);
    }
  });
});

Deno.test("authorization errors after a trusted redirect go back with state and iss", async () => {
  await withServer({}, async ({ server }) => {
    const cases: [AuthorizeParams, string, RegExp][] = [
      [{ code_challenge_method: "plain" }, "invalid_request", /S256/],
      [{ code_challenge: undefined, code_challenge_method: undefined }, "invalid_request", /PKCE/],
      [{ code_challenge: "short" }, "invalid_request", /code_challenge/],
      [{ response_type: "token" }, "unsupported_response_type", /code/],
      [{ scope: "smtp.send admin" }, "invalid_scope", /smtp.send/],
      [{ prompt: "none" }, "login_required", /sign in/],
    ];
    for (const [params, error, description] of cases) {
      const response = await fetch(authorizeUrl(server, params), { redirect: "manual" });
      await response.body?.cancel();
      assert.equal(response.status, 303);
      const location = new URL(response.headers.get("location")!);
      assert.equal(location.origin + location.pathname, LOOPBACK);
      assert.equal(location.searchParams.get("error"), error);
      assert.match(location.searchParams.get("error_description")!, description);
      assert.equal(location.searchParams.get("state"), "xyz");
      assert.equal(location.searchParams.get("iss"), server.issuer);
    }
  });
});

Deno.test("loopback redirects may use any port; the login page has security headers", async () => {
  await withServer({}, async ({ server }) => {
    for (
      const uri of ["http://127.0.0.1:1/cb", "http://[::1]:65000/", "http://localhost:8080/x"]
    ) {
      const { response, html } = await openLogin(server, { redirect_uri: uri });
      assert.match(html, /<label for="email">Email address<\/label>/);
      const csp = response.headers.get("content-security-policy")!;
      assert.match(csp, /default-src 'none'/);
      assert.match(
        csp,
        new RegExp(`form-action 'self' ${new URL(uri).origin.replace(/[[\]]/g, "\\$&")}`),
      );
      assert.equal(response.headers.get("x-frame-options"), "DENY");
      assert.equal(response.headers.get("cache-control"), "no-store");
      assert.match(response.headers.get("set-cookie")!, /HttpOnly; SameSite=Strict/);
    }
    const params = await login(server, { redirect_uri: "https://localhost/cb" });
    assert.ok(params.get("code"));
  });
});

Deno.test("the login form refuses a missing or forged CSRF token", async () => {
  await withServer({}, async ({ server, passwordChecks }) => {
    const { request, csrf, cookie } = await openLogin(server);
    const form = { request, email: "alice@example.com", password: PASSWORD };
    for (
      const [fields, sentCookie] of [
        [form, cookie],
        [{ ...form, csrf: "forged" }, cookie],
        [{ ...form, csrf }, null],
        [{ ...form, csrf }, `oauth_csrf_${request}=forged`],
      ] as const
    ) {
      const response = await postLogin(server, fields, sentCookie);
      assert.equal(response.status, 403);
      assert.match(await response.text(), /not submitted from this server&#39;s page/);
    }
    assert.deepEqual(passwordChecks, [], "the password is never checked");
    // The genuine form still works afterwards.
    const response = await postLogin(server, { ...form, csrf }, cookie);
    await response.body?.cancel();
    assert.equal(response.status, 303);
  });
});

Deno.test("login attempts go through the rate-limit hook first", async () => {
  let allow = false;
  await withServer(
    { rateLimit: () => Promise.resolve(allow) },
    async ({ server, rateLimitCalls, passwordChecks, events }) => {
      const { request, csrf, cookie } = await openLogin(server);
      const form = { request, csrf, email: "Alice@Example.com", password: PASSWORD };
      const refused = await postLogin(server, form, cookie);
      assert.equal(refused.status, 429);
      assert.match(await refused.text(), /Too many sign-in attempts/);
      assert.deepEqual(rateLimitCalls, [
        { action: "login", ip: "127.0.0.1", email: "alice@example.com" },
      ]);
      assert.deepEqual(passwordChecks, []);
      assert.ok(events.some((e) => e.reason === "rate_limited"));
      allow = true;
      const accepted = await postLogin(server, form, cookie);
      await accepted.body?.cancel();
      assert.equal(accepted.status, 303);
    },
  );
});

Deno.test("disabled domains, client domains and backend outages refuse the login", async () => {
  await withServer(
    { domainEnabled: (domain) => domain !== "other.test" },
    async ({ server, passwordChecks }) => {
      const tryLogin = async (email: string, params: AuthorizeParams = {}) => {
        const { request, csrf, cookie } = await openLogin(server, params);
        const response = await postLogin(
          server,
          { request, csrf, email, password: PASSWORD },
          cookie,
        );
        return { status: response.status, text: await response.text() };
      };
      const disabled = await tryLogin("carol@other.test");
      assert.equal(disabled.status, 403);
      assert.match(disabled.text, /Accounts of other.test cannot sign in/);
      // webmail is limited to example.com.
      const webmail = { client_id: "webmail", redirect_uri: WEBMAIL_REDIRECT };
      const foreign = await tryLogin("someone@elsewhere.test", webmail);
      assert.equal(foreign.status, 403);
      assert.match(foreign.text, /Example Webmail may not be used with elsewhere.test accounts/);
      assert.deepEqual(passwordChecks, []);
      const wrong = await tryLogin("nobody@example.com");
      assert.equal(wrong.status, 401);
      assert.match(wrong.text, /role="alert">The email address or password is incorrect/);
    },
  );
  await withServer(
    { failure: { ok: false, reason: "temporary_failure" } },
    async ({ server }) => {
      const { request, csrf, cookie } = await openLogin(server);
      const response = await postLogin(
        server,
        { request, csrf, email: "alice@example.com", password: "x" },
        cookie,
      );
      assert.equal(response.status, 503);
      assert.match(await response.text(), /unavailable right now/);
    },
  );
});

Deno.test("an expired login page and an expired code are refused", async () => {
  await withServer({}, async ({ server, advance }) => {
    const { request, csrf, cookie } = await openLogin(server);
    advance(601_000);
    const late = await postLogin(
      server,
      { request, csrf, email: "alice@example.com", password: PASSWORD },
      cookie,
    );
    assert.equal(late.status, 400);
    assert.match(await late.text(), /expired/);

    const params = await login(server);
    advance(61_000);
    const result = await exchange(server, params.get("code")!);
    assert.equal(result.status, 400);
    assert.equal(result.body.error, "invalid_grant");
  });
});

Deno.test("codes are bound to PKCE, redirect URI and client, and single-use", async () => {
  await withServer({}, async ({ server }) => {
    const mismatches: [Record<string, string>, RegExp][] = [
      [{ code_verifier: "c".repeat(43) }, /PKCE/],
      [{ code_verifier: "short" }, /PKCE/],
      [{ redirect_uri: "http://127.0.0.1:4712/callback" }, /redirect_uri/],
    ];
    for (const [extra, description] of mismatches) {
      const code = (await login(server)).get("code")!;
      const result = await exchange(server, code, extra);
      assert.equal(result.status, 400);
      assert.equal(result.body.error, "invalid_grant");
      assert.match(String(result.body.error_description), description);
      assert.equal(result.headers.get("cache-control"), "no-store");
      // A failed attempt burns the code.
      assert.equal((await exchange(server, code)).body.error, "invalid_grant");
    }
    const code = (await login(server)).get("code")!;
    const missing = { ...(await exchange(server, code, { code_verifier: "" })) };
    assert.equal(missing.body.error, "invalid_grant");

    // A code issued to the public client cannot be redeemed by webmail.
    const stolen = (await login(server)).get("code")!;
    const other = await tokenRequest(server, {
      grant_type: "authorization_code",
      code: stolen,
      redirect_uri: LOOPBACK,
      code_verifier: VERIFIER,
    }, basic("webmail", WEBMAIL_SECRET));
    assert.equal(other.body.error, "invalid_grant");

    // Reuse after success revokes the tokens the code issued.
    const good = (await login(server)).get("code")!;
    const first = await exchange(server, good);
    assert.equal(first.status, 200);
    assert.ok((await server.verifier.verifyBearer(null, String(first.body.access_token))).ok);
    assert.equal((await exchange(server, good)).body.error, "invalid_grant");
    assert.equal(
      (await server.verifier.verifyBearer(null, String(first.body.access_token))).ok,
      false,
    );
    const refresh = await tokenRequest(server, {
      grant_type: "refresh_token",
      client_id: "thunderbird-email-client",
      refresh_token: String(first.body.refresh_token),
    });
    assert.equal(refresh.body.error, "invalid_grant");
  });
});

Deno.test("confidential clients use basic or post auth; errors follow RFC 6749 5.2", async () => {
  await withServer({}, async ({ server }) => {
    const webmail = { client_id: "webmail", redirect_uri: WEBMAIL_REDIRECT };
    // PKCE is optional for confidential clients.
    const noPkce = { ...webmail, code_challenge: undefined, code_challenge_method: undefined };
    const code1 = (await login(server, noPkce)).get("code")!;
    const viaBasic = await tokenRequest(server, {
      grant_type: "authorization_code",
      code: code1,
      redirect_uri: WEBMAIL_REDIRECT,
    }, basic("webmail", WEBMAIL_SECRET));
    assert.equal(viaBasic.status, 200, JSON.stringify(viaBasic.body));
    assert.equal(viaBasic.headers.get("cache-control"), "no-store");

    const code2 = (await login(server, noPkce)).get("code")!;
    const viaPost = await tokenRequest(server, {
      grant_type: "authorization_code",
      client_id: "webmail",
      client_secret: WEBMAIL_SECRET,
      code: code2,
    });
    assert.equal(viaPost.status, 200, "redirect_uri may be omitted with one registered URI");

    const wrong = await tokenRequest(server, {
      grant_type: "refresh_token",
      refresh_token: String(viaBasic.body.refresh_token),
    }, basic("webmail", "wrong"));
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, "invalid_client");
    assert.match(wrong.headers.get("www-authenticate")!, /^Basic/);

    const noSecret = await tokenRequest(server, {
      grant_type: "refresh_token",
      client_id: "webmail",
      refresh_token: String(viaBasic.body.refresh_token),
    });
    assert.equal(noSecret.status, 401);

    // Another client cannot use webmail's refresh token.
    const foreign = await tokenRequest(server, {
      grant_type: "refresh_token",
      client_id: "thunderbird-email-client",
      refresh_token: String(viaBasic.body.refresh_token),
    });
    assert.equal(foreign.body.error, "invalid_grant");
    const rotated = await tokenRequest(server, {
      grant_type: "refresh_token",
      refresh_token: String(viaBasic.body.refresh_token),
    }, basic("webmail", WEBMAIL_SECRET));
    assert.equal(rotated.status, 200);

    const unsupported = await tokenRequest(server, {
      grant_type: "password",
      client_id: "thunderbird-email-client",
    });
    assert.equal(unsupported.body.error, "unsupported_grant_type");

    const notForm = await fetch(`${server.issuer}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(notForm.status, 415);
    assert.equal((await notForm.json()).error, "invalid_request");

    const huge = await fetch(`${server.issuer}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "code=" + "x".repeat(100_000),
    });
    assert.equal(huge.status, 413);
    await huge.body?.cancel();

    const get = await fetch(`${server.issuer}/oauth2/token`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    await get.body?.cancel();
  });
});

Deno.test("introspection needs client authentication; revoking an access token", async () => {
  await withServer({}, async ({ server }) => {
    const code = (await login(server)).get("code")!;
    const tokens = await exchange(server, code);
    const accessToken = String(tokens.body.access_token);
    const introspect = async (headers: Record<string, string>, form: Record<string, string>) => {
      const response = await fetch(`${server.issuer}/oauth2/introspect`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams(form),
      });
      return { status: response.status, body: await response.json() };
    };
    const publicClient = await introspect({}, {
      client_id: "thunderbird-email-client",
      token: accessToken,
    });
    assert.equal(publicClient.status, 401);
    const active = await introspect(basic("webmail", WEBMAIL_SECRET), { token: accessToken });
    assert.equal(active.body.active, true);
    assert.equal(active.body.email, "alice@example.com");
    assert.equal(active.body.aud, "smtp");
    // A refresh token is only introspectable by its own client.
    const refresh = await introspect(basic("webmail", WEBMAIL_SECRET), {
      token: String(tokens.body.refresh_token),
    });
    assert.deepEqual(refresh.body, { active: false });

    const revoke = await fetch(`${server.issuer}/oauth2/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: "thunderbird-email-client", token: accessToken }),
    });
    assert.equal(revoke.status, 200);
    await revoke.body?.cancel();
    const result = await server.verifier.verifyBearer("alice@example.com", accessToken);
    assert.equal(result.ok, false);
    assert.deepEqual(
      (await introspect(basic("webmail", WEBMAIL_SECRET), { token: accessToken })).body,
      { active: false },
    );
    const info = await fetch(`${server.issuer}/oauth2/userinfo`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    assert.equal(info.status, 401);
    assert.match(info.headers.get("www-authenticate")!, /error="invalid_token"/);
    await info.body?.cancel();
  });
});

Deno.test("out-of-band redirect shows the code when allowed", async () => {
  await withServer({ config: { allow_oob: true } }, async ({ server }) => {
    const oob = "urn:ietf:wg:oauth:2.0:oob";
    const { request, csrf, cookie } = await openLogin(server, { redirect_uri: oob });
    const response = await postLogin(
      server,
      { request, csrf, email: "alice@example.com", password: PASSWORD },
      cookie,
    );
    assert.equal(response.status, 200);
    const code = /<output id="code">([^<]+)<\/output>/.exec(await response.text())![1];
    const result = await exchange(server, code, { redirect_uri: oob });
    assert.equal(result.status, 200);
  });
});

Deno.test("dynamic registration: off by default, public native clients only", async () => {
  await withServer({}, async ({ server }) => {
    const response = await fetch(`${server.issuer}/oauth2/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ redirect_uris: ["http://127.0.0.1/cb"] }),
    });
    assert.equal(response.status, 404);
    await response.body?.cancel();
  });
  await withServer({ config: { dynamic_registration: true } }, async ({ server }) => {
    const register = async (doc: unknown) => {
      const response = await fetch(`${server.issuer}/oauth2/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(doc),
      });
      return { status: response.status, body: await response.json() };
    };
    const meta = await (await fetch(`${server.url}/.well-known/oauth-authorization-server`)).json();
    assert.equal(meta.registration_endpoint, `${server.issuer}/oauth2/register`);
    assert.equal(
      (await register({ redirect_uris: ["https://evil.example/cb"] })).body.error,
      "invalid_redirect_uri",
    );
    assert.equal(
      (await register({
        redirect_uris: [LOOPBACK],
        token_endpoint_auth_method: "client_secret_basic",
      })).body.error,
      "invalid_client_metadata",
    );
    const created = await register({
      redirect_uris: ["com.example.mail:/oauth", LOOPBACK],
      client_name: "Example Mail",
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.token_endpoint_auth_method, "none");
    const clientId = String(created.body.client_id);
    const { html } = await openLogin(server, { client_id: clientId });
    assert.match(html, /Example Mail wants to send e-mail/);
    const code = (await login(server, { client_id: clientId })).get("code")!;
    const tokens = await exchange(server, code, { client_id: clientId });
    assert.equal(tokens.status, 200);
    assert.ok(
      (await server.verifier.verifyBearer("alice@example.com", String(tokens.body.access_token)))
        .ok,
    );
  });
});
