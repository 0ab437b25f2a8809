/**
 * OpenID Connect and the built-in client's documented secret, driven by a
 * real OAuth library (oauth4webapi) against a real relay's authorization
 * server: the code flow with PKCE and a nonce, the ID token validated by the
 * library and its signature checked against our JWKS, `/userinfo`; the
 * built-in client authenticating with `client_secret_post`, with
 * `client_secret_basic`, and with PKCE alone, at the token and revocation
 * endpoints, and refused with a wrong secret.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { hashSecretSsha512 } from "../src/oauth/mod.ts";
import { INSECURE, submitLogin } from "./support/oauth_flow.ts";
import { startTestRelay, type TestRelay, USERS } from "./support/relay.ts";

/** The client and redirect the prototype documented. */
const CLIENT_ID = "thunderbird-email-client";
const DOCUMENTED_SECRET = "thunderbird-secret";
const DOCUMENTED_REDIRECT = "http://127.0.0.1:8080/callback";

async function withOAuthRelay(
  oauthConfig: Record<string, unknown>,
  run: (t: TestRelay, issuer: string) => Promise<void>,
): Promise<void> {
  const t = await startTestRelay({
    config: {
      oauth: { enabled: true, listen: "127.0.0.1:0", issuer: "http://127.0.0.1:0", ...oauthConfig },
    },
  });
  try {
    await run(t, t.relay.oauth!.issuer);
  } finally {
    await t.close();
  }
}

async function discover(issuer: string, algorithm: "oidc" | "oauth2") {
  const url = new URL(issuer);
  return await oauth.processDiscoveryResponse(
    url,
    await oauth.discoveryRequest(url, { algorithm, ...INSECURE }),
  );
}

/** Signs alice in for `scope` with PKCE (and `extra` parameters); the callback's parameters. */
async function authorize(
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  options: { scope: string; extra?: Record<string, string> },
): Promise<{ params: URLSearchParams; verifier: string }> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: DOCUMENTED_REDIRECT,
    scope: options.scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    ...options.extra,
  }).toString();
  const callback = await submitLogin(url, USERS[0].email, USERS[0].password);
  assert.equal(callback.origin + callback.pathname, DOCUMENTED_REDIRECT);
  return { params: oauth.validateAuthResponse(as, client, callback, state), verifier };
}

/** The code exchange at the token endpoint with `auth`, processed by the library. */
async function exchange(
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  auth: oauth.ClientAuth,
  flow: { params: URLSearchParams; verifier: string },
  options?: oauth.ProcessAuthorizationCodeResponseOptions,
): Promise<oauth.TokenEndpointResponse> {
  return await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(
      as,
      client,
      auth,
      flow.params,
      DOCUMENTED_REDIRECT,
      flow.verifier,
      INSECURE,
    ),
    options,
  );
}

Deno.test("scope=openid: oauth4webapi gets and validates an ID token with the nonce, and /userinfo", async () => {
  await withOAuthRelay({}, async (_t, issuer) => {
    const as = await discover(issuer, "oidc");
    assert.equal(as.userinfo_endpoint, `${issuer}/oauth2/userinfo`);
    assert.deepEqual(as.id_token_signing_alg_values_supported, ["ES256"]);
    for (const scope of ["openid", "email", "smtp.send"]) {
      assert.ok(as.scopes_supported?.includes(scope), scope);
    }
    for (const claim of ["sub", "email", "email_verified", "nonce"]) {
      assert.ok(as.claims_supported?.includes(claim), claim);
    }

    const client: oauth.Client = { client_id: CLIENT_ID, id_token_signed_response_alg: "ES256" };
    const nonce = oauth.generateRandomNonce();
    const flow = await authorize(as, client, { scope: "openid email smtp.send", extra: { nonce } });
    const result = await exchange(as, client, oauth.None(), flow, {
      expectedNonce: nonce,
      requireIdToken: true,
    });
    const claims = oauth.getValidatedIdTokenClaims(result)!;
    assert.equal(claims.iss, issuer);
    assert.equal(claims.sub, USERS[0].email);
    assert.equal(claims.aud, CLIENT_ID);
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.email, USERS[0].email);
    assert.equal(claims.email_verified, true);
    assert.ok(claims.exp > claims.iat);

    // The library trusts the token endpoint's TLS for the signature; check it ourselves.
    const jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    const verified = await jwtVerify(result.id_token!, jwks, {
      issuer,
      audience: CLIENT_ID,
      algorithms: ["ES256"],
    });
    assert.equal(verified.payload.nonce, nonce);

    const info = await oauth.processUserInfoResponse(
      as,
      client,
      claims.sub,
      await oauth.userInfoRequest(as, client, result.access_token, INSECURE),
    );
    assert.equal(info.email, USERS[0].email);
    assert.equal(info.email_verified, true);

    // Without openid in the scope there is no ID token.
    const plain = await authorize(as, client, { scope: "smtp.send" });
    const tokens = await exchange(as, client, oauth.None(), plain);
    assert.equal(tokens.id_token, undefined);
    assert.equal(tokens.scope, "smtp.send");
  });
});

/** Asserts that `flow` fails with `invalid_client` (in the body, or a 401 Basic challenge). */
async function assertInvalidClient(flow: Promise<void>): Promise<void> {
  try {
    await flow;
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      assert.equal(error.error, "invalid_client");
      return;
    }
    assert.ok(error instanceof oauth.WWWAuthenticateChallengeError, String(error));
    assert.equal(error.status, 401);
    assert.equal((await error.response.json()).error, "invalid_client");
    return;
  }
  assert.fail("expected invalid_client");
}

/** The code flow for the built-in client with one way of client authentication, then revocation. */
async function flowWith(issuer: string, auth: oauth.ClientAuth): Promise<void> {
  const as = await discover(issuer, "oauth2");
  const client: oauth.Client = { client_id: CLIENT_ID };
  const tokens = await exchange(
    as,
    client,
    auth,
    await authorize(as, client, { scope: "smtp.send" }),
  );
  assert.ok(tokens.refresh_token);
  const revoked = await oauth.revocationRequest(as, client, auth, tokens.refresh_token!, INSECURE);
  await oauth.processRevocationResponse(revoked);
  await revoked.body?.cancel().catch(() => {});
  // Revoked: the refresh token no longer works.
  await assert.rejects(
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, INSECURE),
    ),
    (error: unknown) => error instanceof oauth.ResponseBodyError && error.error === "invalid_grant",
  );
}

Deno.test("the built-in client: documented secret by POST or Basic, or PKCE alone; a wrong secret is invalid_client", async () => {
  await withOAuthRelay({}, async (_t, issuer) => {
    await flowWith(issuer, oauth.ClientSecretPost(DOCUMENTED_SECRET));
    await flowWith(issuer, oauth.ClientSecretBasic(DOCUMENTED_SECRET));
    await flowWith(issuer, oauth.None());

    const bodies: Record<string, string>[] = [{ client_secret: "wrong-secret" }, {}];
    for (const body of bodies) {
      const headers: Record<string, string> = {
        "content-type": "application/x-www-form-urlencoded",
      };
      if (!("client_secret" in body)) headers.authorization = "Basic " + btoa(`${CLIENT_ID}:nope`);
      for (const path of ["/oauth2/token", "/oauth2/revoke"]) {
        const response = await fetch(`${issuer}${path}`, {
          method: "POST",
          headers,
          body: new URLSearchParams({
            client_id: CLIENT_ID,
            grant_type: "refresh_token",
            refresh_token: "x",
            token: "x",
            ...body,
          }),
        });
        assert.equal(response.status, 401, path);
        assert.equal((await response.json()).error, "invalid_client", path);
      }
    }
  });
});

Deno.test("oauth.default_client_secret_hash: another secret replaces the documented one; empty turns it off", async () => {
  await withOAuthRelay(
    { default_client_secret_hash: hashSecretSsha512("our-own-secret-42") },
    async (_t, issuer) => {
      await flowWith(issuer, oauth.ClientSecretPost("our-own-secret-42"));
      await assertInvalidClient(flowWith(issuer, oauth.ClientSecretPost(DOCUMENTED_SECRET)));
    },
  );
  await withOAuthRelay({ default_client_secret_hash: "" }, async (_t, issuer) => {
    await flowWith(issuer, oauth.None());
    await assertInvalidClient(flowWith(issuer, oauth.ClientSecretBasic(DOCUMENTED_SECRET)));
  });
});
