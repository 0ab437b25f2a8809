/**
 * The example Thunderbird add-on (`examples/thunderbird-oauth/manifest.json`)
 * against a relay configured as the manifest says: its `oauth_provider`
 * matches our discovery document, its redirect URI and scope are accepted
 * for its client id, the sign-in comes back to that redirect with `iss`
 * equal to `issuerIdentifier`, and the token it gets sends mail with
 * XOAUTH2. Also the facts Thunderbird 153 imposes (host names with a dot,
 * `redirectionEndpoint` present).
 *
 * @module
 */
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { connectClient, startTestRelay, USERS } from "./support/relay.ts";
import { freePort } from "./support/ports.ts";
import { submitLogin } from "./support/oauth_flow.ts";

interface OAuthProvider {
  issuer: string;
  issuerIdentifier: string;
  clientId: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  redirectionEndpoint: string;
  usePKCE: boolean;
  hostnames: string[];
  scopes: string;
}

const manifest = JSON.parse(
  await Deno.readTextFile(new URL("../examples/thunderbird-oauth/manifest.json", import.meta.url)),
) as { manifest_version: number; oauth_provider: OAuthProvider };

Deno.test("the example add-on's oauth_provider matches what the relay publishes and signs in", async () => {
  const provider = manifest.oauth_provider;
  assert.equal(manifest.manifest_version, 2);
  assert.equal(provider.redirectionEndpoint, "http://localhost", "Thunderbird requires it");
  assert.equal(provider.usePKCE, true);
  for (const host of provider.hostnames) assert.match(host, /\./, "Thunderbird needs a dot");
  assert.equal(provider.issuer, new URL(provider.authorizationEndpoint).hostname);

  // The relay as the manifest describes it, reached on loopback.
  const port = freePort();
  const t = await startTestRelay({
    config: {
      server: { public_hostname: provider.hostnames[0] },
      oauth: {
        enabled: true,
        listen: `127.0.0.1:${port}`,
        issuer: provider.issuerIdentifier,
      },
    },
  });
  try {
    const local = `http://127.0.0.1:${port}`;
    const discovery = await (await fetch(`${local}/.well-known/openid-configuration`)).json();
    assert.equal(discovery.issuer, provider.issuerIdentifier);
    assert.equal(discovery.authorization_endpoint, provider.authorizationEndpoint);
    assert.equal(discovery.token_endpoint, provider.tokenEndpoint);
    for (const scope of provider.scopes.split(" ")) {
      assert.ok(discovery.scopes_supported.includes(scope), scope);
    }

    // Autoconfig sends Thunderbird to a host the add-on claims.
    const config = await (await fetch(
      `${local}/mail/config-v1.1.xml?emailaddress=${USERS[0].email}`,
    )).text();
    assert.match(config, new RegExp(`<hostname>${provider.hostnames[0]}</hostname>`));

    // Thunderbird's request: client id, http://localhost, scope, PKCE; answered on loopback.
    const verifier = oauth.generateRandomCodeVerifier();
    const authorize = new URL(
      provider.authorizationEndpoint.replace(provider.issuerIdentifier, local),
    );
    authorize.search = new URLSearchParams({
      response_type: "code",
      client_id: provider.clientId,
      redirect_uri: provider.redirectionEndpoint,
      scope: provider.scopes,
      state: "tb-state",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    }).toString();
    const callback = await submitLogin(authorize, USERS[0].email, USERS[0].password);
    assert.equal(callback.origin, provider.redirectionEndpoint);
    assert.equal(callback.searchParams.get("iss"), provider.issuerIdentifier);
    assert.equal(callback.searchParams.get("state"), "tb-state");
    const response = await fetch(`${local}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: provider.clientId,
        code: callback.searchParams.get("code")!,
        redirect_uri: provider.redirectionEndpoint,
        code_verifier: verifier,
      }),
    });
    assert.equal(response.status, 200);
    const tokens = await response.json();
    assert.equal(tokens.scope, provider.scopes);

    // The token works for SMTP as Thunderbird uses it (XOAUTH2 after TLS).
    const client = await connectClient(t);
    const sasl = `user=${USERS[0].email}\x01auth=Bearer ${tokens.access_token}\x01\x01`;
    const reply = await client.authRaw("XOAUTH2", new TextEncoder().encode(sasl).toBase64());
    assert.equal(reply.code, 235);
    await client.quit();
  } finally {
    await t.close();
  }
});
