/**
 * The native-client flow end to end, as Thunderbird does it: discovery,
 * an authorization request with PKCE S256 and a loopback redirect listener,
 * a real headless Chromium signing in on the login page, the code exchange,
 * and the relay's verifier accepting the access token. Then refresh
 * rotation, reuse detection, introspection and revocation on those tokens.
 *
 * One browser launch for the whole file.
 */
import * as oauth from "oauth4webapi";
import assert from "node:assert/strict";
import { createAuthenticator, hashPassword, type PasswordAuthenticator } from "../src/auth/mod.ts";
import { parseConfig } from "../src/config/mod.ts";
import { oauthSchema } from "../src/config/oauth_schema.ts";
import { hashSecretSsha512, startOAuthServer } from "../src/oauth/mod.ts";
import { launchBrowser } from "./support/browser.ts";
import {
  beginNativeFlow,
  finishNativeFlow,
  INSECURE,
  signInOverHttp as signIn,
  startCallbackListener,
} from "./support/oauth_flow.ts";

const signInOverHttp = (issuer: string, redirectUri: string) =>
  signIn({ issuer, redirectUri, email: "alice@example.com", password: "correct horse battery" });

/**
 * The real users-file backend (argon2id through the hashing worker pool),
 * with cheap hash parameters.
 */
async function fileAuthenticator(dir: string): Promise<PasswordAuthenticator> {
  const config = parseConfig({
    auth: {
      workers: 1,
      argon2: { memory_kib: 64, iterations: 1, parallelism: 1 },
      file: { users: `${dir}/users.txt`, users_dir: `${dir}/users` },
    },
  });
  const cheap = { memoryKib: 64, iterations: 1, parallelism: 1 };
  await Deno.writeTextFile(
    `${dir}/users.txt`,
    `alice@example.com:${await hashPassword("correct horse battery", cheap)}\n`,
  );
  return createAuthenticator(config, { report: () => {} });
}

Deno.test("native client signs in through Chromium and the relay accepts its token", async (t) => {
  const dir = await Deno.makeTempDir();
  const events: Record<string, unknown>[] = [];
  const introspectorSecret = "introspector-secret-0123456789";
  const config = oauthSchema.parse({
    enabled: true,
    listen: "127.0.0.1:0",
    issuer: "http://127.0.0.1:0",
    keys_file: `${dir}/keys.json`,
    clients: [{ id: "introspector", secret_hash: hashSecretSsha512(introspectorSecret) }],
  });
  const authenticator = await fileAuthenticator(dir);
  const server = await startOAuthServer({
    config,
    authenticator,
    audit: (event) => events.push(event),
  });
  const listener = startCallbackListener();
  await using browser = await launchBrowser();
  try {
    // Discovery (RFC 8414) and the authorization request (PKCE S256, loopback redirect).
    const flow = await beginNativeFlow(server.issuer, listener.redirectUri, {
      login_hint: "Alice@Example.com",
    });
    const { as, client, codeVerifier } = flow;
    const authorize = flow.authorizeUrl;
    assert.deepEqual(as.code_challenge_methods_supported, ["S256"]);
    assert.equal(as.authorization_response_iss_parameter_supported, true);

    const page = await browser.context.newPage();
    const cspViolations: string[] = [];
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });

    await t.step("the login page is accessible and refuses a wrong password", async () => {
      const response = await page.goto(authorize.href);
      assert.equal(response?.status(), 200);
      const headers = response!.headers();
      assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
      assert.equal(headers["cache-control"], "no-store");
      assert.equal(await page.title(), "Sign in to send mail");
      assert.match(await page.locator("main").innerText(), /Thunderbird wants to send e-mail/);
      // Labels are wired to their inputs; login_hint pre-fills the email.
      assert.equal(await page.getByLabel("Email address").inputValue(), "Alice@Example.com");
      await page.getByLabel("Password").fill("wrong password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForLoadState();
      assert.equal(
        await page.getByRole("alert").innerText(),
        "The email address or password is incorrect.",
      );
      assert.equal(await page.getByLabel("Password").getAttribute("aria-invalid"), "true");
    });

    let callbackUrl!: URL;
    await t.step("a correct password redirects to the loopback listener", async () => {
      await page.getByLabel("Password").fill("correct horse battery");
      await page.getByRole("button", { name: "Sign in" }).click();
      let timer: ReturnType<typeof setTimeout> | undefined;
      callbackUrl = await Promise.race([
        listener.callback,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no redirect")), 15_000);
        }),
      ]).finally(() => clearTimeout(timer));
      await page.waitForURL(/\/callback/);
      assert.equal(await page.locator("p").innerText(), "You can close this window.");
      assert.equal(callbackUrl.searchParams.get("iss"), server.issuer);
      assert.deepEqual(cspViolations, []);
    });
    await page.close();

    // The code exchange; oauth4webapi checks state and iss (RFC 9207).
    const { params, tokens } = await finishNativeFlow(flow, callbackUrl);
    assert.equal(tokens.token_type, "bearer");
    assert.equal(tokens.scope, "smtp.send");
    assert.equal(tokens.expires_in, 3600);
    assert.ok(tokens.refresh_token);

    await t.step("the relay's verifier accepts the access token for its user", async () => {
      const result = await server.verifier.verifyBearer("ALICE@example.com", tokens.access_token);
      assert.deepEqual(result, {
        ok: true,
        email: "alice@example.com",
        domain: "example.com",
        backend: "oauth",
      });
      const other = await server.verifier.verifyBearer("bob@example.com", tokens.access_token);
      assert.equal(other.ok, false);
    });

    await t.step("the code cannot be used twice", async () => {
      const again = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.None(),
        params,
        listener.redirectUri,
        codeVerifier,
        INSECURE,
      );
      assert.equal(again.status, 400);
      assert.equal((await again.json()).error, "invalid_grant");
      // Reuse revokes what the code issued.
      const result = await server.verifier.verifyBearer(null, tokens.access_token);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.status, "invalid_token");
    });

    await t.step(
      "userinfo, refresh rotation, reuse detection, introspection, revocation",
      async () => {
        // A second sign-in for a fresh, unrevoked family (no browser: the form over HTTP).
        const fresh = await signInOverHttp(server.issuer, listener.redirectUri);
        const info = await fetch(as.userinfo_endpoint!, {
          headers: { authorization: `Bearer ${fresh.access_token}` },
        });
        assert.equal(info.status, 200);
        assert.deepEqual(await info.json(), {
          sub: "alice@example.com",
          email: "alice@example.com",
          email_verified: true,
          domain: "example.com",
        });

        // Refresh rotates; the rotated token is then refused and its reuse ends the family.
        const rotated = await oauth.processRefreshTokenResponse(
          as,
          client,
          await oauth.refreshTokenGrantRequest(
            as,
            client,
            oauth.None(),
            fresh.refresh_token,
            INSECURE,
          ),
        );
        assert.notEqual(rotated.refresh_token, fresh.refresh_token);
        assert.ok((await server.verifier.verifyBearer(null, rotated.access_token)).ok);

        const introspector: oauth.Client = { client_id: "introspector" };
        const introspect = async (token: string) =>
          await oauth.processIntrospectionResponse(
            as,
            introspector,
            await oauth.introspectionRequest(
              as,
              introspector,
              oauth.ClientSecretBasic(introspectorSecret),
              token,
              INSECURE,
            ),
          );
        const active = await introspect(rotated.access_token);
        assert.equal(active.active, true);
        assert.equal(active.client_id, "thunderbird-email-client");
        assert.equal(active.username, "alice@example.com");
        assert.equal(active.scope, "smtp.send");

        const reuse = await oauth.refreshTokenGrantRequest(
          as,
          client,
          oauth.None(),
          fresh.refresh_token!,
          INSECURE,
        );
        assert.equal(reuse.status, 400);
        assert.equal((await reuse.json()).error, "invalid_grant");
        assert.equal((await server.verifier.verifyBearer(null, rotated.access_token)).ok, false);
        assert.equal((await introspect(rotated.access_token)).active, false);
        const afterReuse = await oauth.refreshTokenGrantRequest(
          as,
          client,
          oauth.None(),
          rotated.refresh_token!,
          INSECURE,
        );
        assert.equal(afterReuse.status, 400);
        await afterReuse.body?.cancel();
        assert.ok(events.some((e) => e.event === "oauth.token" && e.reason === "refresh_reused"));

        // Revocation (RFC 7009) of a third family's refresh token ends its access tokens too.
        const third = await signInOverHttp(server.issuer, listener.redirectUri);
        assert.ok((await server.verifier.verifyBearer(null, third.access_token)).ok);
        const revocation = await oauth.revocationRequest(
          as,
          client,
          oauth.None(),
          third.refresh_token,
          INSECURE,
        );
        await oauth.processRevocationResponse(revocation);
        await revocation.body?.cancel();
        const revoked = await server.verifier.verifyBearer(null, third.access_token);
        assert.equal(revoked.ok, false);
        assert.equal(!revoked.ok && revoked.status, "invalid_token");
      },
    );

    // The audit trail saw logins, never a password or token.
    const trail = JSON.stringify(events);
    assert.ok(events.some((e) => e.event === "oauth.login" && e.outcome === "failure"));
    assert.ok(events.some((e) => e.event === "oauth.login" && e.outcome === "success"));
    assert.ok(!trail.includes("correct horse") && !trail.includes(tokens.access_token));
  } finally {
    await browser.close();
    await listener.close();
    await server.close();
    await authenticator.close();
    await Deno.remove(dir, { recursive: true });
  }
});
