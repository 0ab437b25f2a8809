/**
 * OAuth2 flows for tests that need a token from a real authorization server:
 * the login form posted over HTTP (no browser), and a loopback redirect
 * listener for native-client flows.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";

/** Tokens from a code exchange. */
export interface TokenSet {
  access_token: string;
  refresh_token: string;
}

/**
 * Signs a user in without a browser: GET the login page, post the form with
 * its CSRF field and cookie, exchange the code (PKCE S256, public client).
 */
export async function signInOverHttp(options: {
  issuer: string;
  redirectUri: string;
  email: string;
  password: string;
  clientId?: string;
  /** Post the login form here instead (another node of the same issuer). */
  loginAt?: string;
  /** Exchange the code here instead (another node of the same issuer). */
  tokenAt?: string;
}): Promise<TokenSet> {
  const { issuer, redirectUri } = options;
  const clientId = options.clientId ?? "thunderbird-email-client";
  const verifier = oauth.generateRandomCodeVerifier();
  const authorize = new URL(`${issuer}/oauth2/authorize`);
  authorize.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  }).toString();
  const callback = await submitLogin(authorize, options.email, options.password, options.loginAt);
  const code = callback.searchParams.get("code")!;
  const response = await fetch(`${options.tokenAt ?? issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: clientId,
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    }),
  });
  assert.equal(response.status, 200);
  return await response.json();
}

/**
 * Opens the login page of an authorization request over HTTP, posts the form
 * (with its CSRF field and cookie) and resolves with the redirect the server
 * answered: the client's callback URL with `code` (or `error`).
 */
export async function submitLogin(
  authorize: URL,
  email: string,
  password: string,
  /** Post the form to this origin instead (another node of the same issuer). */
  postTo: string = authorize.origin,
): Promise<URL> {
  const pageResponse = await fetch(authorize);
  const html = await pageResponse.text();
  assert.equal(pageResponse.status, 200, html);
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)![1];
  const cookie = pageResponse.headers.get("set-cookie")!.split(";")[0];
  const login = await fetch(postTo + authorize.pathname, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie },
    body: new URLSearchParams({ request: field("request"), csrf: field("csrf"), email, password }),
  });
  assert.equal(login.status, 303);
  await login.body?.cancel();
  return new URL(login.headers.get("location")!);
}

/** A loopback redirect listener (RFC 8252 7.3) that resolves with the first callback URL. */
export function startCallbackListener(): {
  redirectUri: string;
  callback: Promise<URL>;
  close(): Promise<void>;
} {
  const { promise, resolve } = Promise.withResolvers<URL>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/callback") return new Response("not found", { status: 404 });
    resolve(url);
    return new Response("<!doctype html><title>Done</title><p>You can close this window.</p>", {
      headers: { "content-type": "text/html" },
    });
  });
  return {
    redirectUri: `http://127.0.0.1:${server.addr.port}/callback`,
    callback: promise,
    close: () => server.shutdown(),
  };
}

/** oauth4webapi option for our plain-HTTP loopback issuer. */
export const INSECURE = { [oauth.allowInsecureRequests]: true } as const;

/** A native-client authorization request in progress (discovery done, URL built). */
export interface NativeFlow {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  /** Open this in the browser. */
  authorizeUrl: URL;
  state: string;
  codeVerifier: string;
  redirectUri: string;
}

/**
 * Discovery (RFC 8414) and an authorization request for the public client
 * `thunderbird-email-client` with PKCE S256, scope `smtp.send` and a
 * loopback `redirectUri`; `extra` adds parameters (e.g. `login_hint`).
 */
export async function beginNativeFlow(
  issuer: string,
  redirectUri: string,
  extra: Record<string, string> = {},
): Promise<NativeFlow> {
  const url = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(
    url,
    await oauth.discoveryRequest(url, { algorithm: "oauth2", ...INSECURE }),
  );
  const client: oauth.Client = { client_id: "thunderbird-email-client" };
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorizeUrl = new URL(as.authorization_endpoint!);
  authorizeUrl.search = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope: "smtp.send",
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    ...extra,
  }).toString();
  return { as, client, authorizeUrl, state, codeVerifier, redirectUri };
}

/** The code exchange for the redirect a flow received; oauth4webapi checks state and iss. */
export async function finishNativeFlow(
  flow: NativeFlow,
  callbackUrl: URL,
): Promise<{ params: URLSearchParams; tokens: oauth.TokenEndpointResponse }> {
  const params = oauth.validateAuthResponse(flow.as, flow.client, callbackUrl, flow.state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    flow.as,
    flow.client,
    await oauth.authorizationCodeGrantRequest(
      flow.as,
      flow.client,
      oauth.None(),
      params,
      flow.redirectUri,
      flow.codeVerifier,
      INSECURE,
    ),
  );
  return { params, tokens };
}
