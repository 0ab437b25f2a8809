/**
 * The authorization server's HTTP endpoints on `Deno.serve`: authorization
 * code flow with a login page, token (code and refresh grants), JWKS,
 * userinfo, introspection (RFC 7662), revocation (RFC 7009), metadata
 * (RFC 8414 and OpenID discovery) and optional dynamic registration
 * (RFC 7591, public native clients only).
 *
 * @module
 */
import { parseEmail } from "../mail/mod.ts";
import { getLogger } from "@logtape/logtape";
import type { PasswordAuthenticator } from "../auth/authenticator.ts";
import type { JwtBearerAuthenticator } from "../auth/token_verifier.ts";
import type { OAuthConfig } from "../config/oauth_schema.ts";
import { AUTOCONFIG_PATHS, type AutoconfigOptions, handleAutoconfig } from "./autoconfig.ts";
import type { SecretVerifier } from "./client_secret.ts";
import {
  clientAllowsDomain,
  type ClientRegistry,
  OOB_REDIRECT_URI,
  redirectAllowed,
  registrableRedirect,
} from "./clients.ts";
import {
  authenticateClient,
  HttpError,
  json,
  oauthError,
  readBody,
  readForm,
  toForm,
} from "./http.ts";
import type { SigningKeys } from "./keys.ts";
import { pageHeaders, renderErrorPage, renderLoginPage, renderOobPage } from "./login_page.ts";
import type { OAuthStore } from "./store.ts";
import { StateUnavailableError } from "../state/mod.ts";
import {
  hashToken,
  isCodeVerifier,
  isS256Challenge,
  randomToken,
  s256,
  safeEqual,
  signAccessToken,
  signIdToken,
} from "./tokens.ts";

const log = getLogger(["relay", "oauth"]);

/** Largest form body accepted (login, token, introspection, revocation). */
const FORM_LIMIT = 16 * 1024;
/** Scopes of OpenID Connect that every client may ask for besides its own. */
const OPENID_SCOPES = ["openid", "email"];
/** Longest OpenID `nonce` accepted. */
const MAX_NONCE = 512;
/** Largest registration document accepted. */
const REGISTRATION_LIMIT = 16 * 1024;

/** What a rate-limit hook is asked about. */
export interface RateLimitKey {
  /** `login`: a password attempt on the login page; `register`: dynamic registration. */
  action: "login" | "register";
  /** The client address. */
  ip: string;
  /** The email typed (lower-cased), or "" when there is none. */
  email: string;
}

/** Answers whether an attempt may go ahead (`false`: refused as too many). */
export type RateLimitHook = (key: RateLimitKey) => Promise<boolean>;

/** Receives security events (never secrets) for the audit trail. */
export type AuditHook = (event: Record<string, unknown>) => void;

/** Everything the handler needs. */
export interface OAuthContext {
  config: OAuthConfig;
  /** The issuer identifier actually in use (port resolved). */
  issuer: string;
  authenticator: PasswordAuthenticator;
  registry: ClientRegistry;
  store: OAuthStore;
  keys: SigningKeys;
  verifier: JwtBearerAuthenticator;
  verifySecret: SecretVerifier;
  rateLimit: RateLimitHook;
  audit: AuditHook;
  domainEnabled: (domain: string) => boolean | Promise<boolean>;
  /** Client autoconfig documents; `null`: not served. */
  autoconfig: AutoconfigOptions | null;
  now: () => number;
}

/** The endpoint paths under the issuer. */
export function endpoints(issuer: string): Record<string, string> {
  const base = issuer.replace(/\/+$/, "");
  return {
    authorization_endpoint: `${base}/oauth2/authorize`,
    token_endpoint: `${base}/oauth2/token`,
    jwks_uri: `${base}/oauth2/jwks`,
    userinfo_endpoint: `${base}/oauth2/userinfo`,
    introspection_endpoint: `${base}/oauth2/introspect`,
    revocation_endpoint: `${base}/oauth2/revoke`,
    registration_endpoint: `${base}/oauth2/register`,
  };
}

/** The RFC 8414 metadata document (also served as OpenID discovery). */
export function metadata(context: OAuthContext, openid: boolean): Record<string, unknown> {
  const urls = endpoints(context.issuer);
  const { registration_endpoint, ...rest } = urls;
  const authMethods = ["client_secret_basic", "client_secret_post", "none"];
  return {
    issuer: context.issuer,
    ...rest,
    ...(context.config.dynamic_registration ? { registration_endpoint } : {}),
    scopes_supported: ["openid", "email", "smtp.send"],
    response_types_supported: ["code"],
    response_modes_supported: ["query"],
    grant_types_supported: ["authorization_code", "refresh_token"],
    token_endpoint_auth_methods_supported: authMethods,
    introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
    revocation_endpoint_auth_methods_supported: authMethods,
    code_challenge_methods_supported: ["S256"],
    authorization_response_iss_parameter_supported: true,
    claims_supported: [
      "iss",
      "sub",
      "aud",
      "exp",
      "iat",
      "auth_time",
      "nonce",
      "email",
      "email_verified",
      "domain",
      "client_id",
      "scope",
    ],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["ES256"],
    ...(openid ? { claims_parameter_supported: false, request_parameter_supported: false } : {}),
  };
}

/** Builds the request handler. */
export function createHandler(
  context: OAuthContext,
): (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response> {
  const base = new URL(context.issuer).pathname.replace(/\/+$/, "");
  const routes: Record<string, Record<string, Handler>> = {
    [`${base}/oauth2/authorize`]: { GET: authorizeGet, POST: authorizePost },
    [`${base}/oauth2/token`]: { POST: token },
    [`${base}/oauth2/jwks`]: { GET: jwks },
    [`${base}/oauth2/userinfo`]: { GET: userinfo, POST: userinfo },
    [`${base}/oauth2/introspect`]: { POST: introspect },
    [`${base}/oauth2/revoke`]: { POST: revoke },
    [`${base}/oauth2/register`]: { POST: register },
    [`/.well-known/oauth-authorization-server${base}`]: {
      GET: () => Promise.resolve(publicJson(metadata(context, false))),
    },
    [`${base}/.well-known/openid-configuration`]: {
      GET: () => Promise.resolve(publicJson(metadata(context, true))),
    },
  };
  const autoconfigPaths = new Set(AUTOCONFIG_PATHS.map((p) => p.toLowerCase()));
  const autoconfig = context.autoconfig;
  if (autoconfig) {
    for (const path of autoconfigPaths) {
      const handler: Handler = (_context, request, url) =>
        handleAutoconfig(autoconfig, request, url);
      routes[path] = { GET: handler, HEAD: handler, POST: handler };
    }
  }
  return async (request, info) => {
    const url = new URL(request.url);
    const lower = url.pathname.toLowerCase();
    const route = routes[autoconfigPaths.has(lower) ? lower : url.pathname];
    if (!route) {
      await request.body?.cancel();
      return new Response("not found\n", { status: 404, headers: plainHeaders() });
    }
    const handler = route[request.method];
    if (!handler) {
      await request.body?.cancel();
      return new Response("method not allowed\n", {
        status: 405,
        headers: plainHeaders({ allow: Object.keys(route).join(", ") }),
      });
    }
    const ip = (info.remoteAddr as Deno.NetAddr).hostname ?? "";
    try {
      return await handler(context, request, url, ip);
    } catch (error) {
      if (error instanceof HttpError) {
        return url.pathname.endsWith("/authorize")
          ? page(error.status, renderErrorPage("Request refused", error.message))
          : oauthError("invalid_request", error.message, error.status);
      }
      if (error instanceof StateUnavailableError) {
        // [state] is unreachable (Redis down): a temporary condition, never a crash.
        log.warning("OAuth endpoint {path} unavailable: {error}", {
          path: url.pathname,
          error: error.message,
        });
        return url.pathname.endsWith("/authorize")
          ? page(503, renderErrorPage("Temporarily unavailable", "Please try again shortly."))
          : oauthError("temporarily_unavailable", "try again later", 503);
      }
      log.error("OAuth endpoint {path} failed: {error}", { path: url.pathname, error });
      return url.pathname.endsWith("/authorize")
        ? page(500, renderErrorPage("Something went wrong", "The server could not sign you in."))
        : oauthError("server_error", "internal error", 500);
    }
  };
}

type Handler = (
  context: OAuthContext,
  request: Request,
  url: URL,
  ip: string,
) => Promise<Response>;

function plainHeaders(extra: Record<string, string> = {}): Headers {
  return new Headers({
    "content-type": "text/plain; charset=utf-8",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    ...extra,
  });
}

function publicJson(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "public, max-age=300",
      "x-content-type-options": "nosniff",
      "access-control-allow-origin": "*",
    },
  });
}

function page(status: number, html: string, formTargets: string[] = [], extra?: Headers): Response {
  const headers = pageHeaders(formTargets);
  extra?.forEach((value, name) => headers.append(name, value));
  return new Response(html, { status, headers });
}

/** The origin (or scheme, for private-use URIs) a CSP form-action must allow for a redirect. */
function formTarget(redirectUri: string): string[] {
  if (redirectUri === OOB_REDIRECT_URI) return [];
  const url = new URL(redirectUri);
  return url.origin !== "null" ? [url.origin] : [url.protocol];
}

/** Appends parameters to a redirect URI, keeping its own query. */
function withParams(redirectUri: string, params: Record<string, string | null>): string {
  const url = new URL(redirectUri);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null) url.searchParams.set(name, value);
  }
  return url.href;
}

function redirect(location: string, extra?: Headers): Response {
  const headers = new Headers({
    location,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
  });
  extra?.forEach((value, name) => headers.append(name, value));
  return new Response(null, { status: 303, headers });
}

function csrfCookieName(requestId: string): string {
  return `oauth_csrf_${requestId}`;
}

function readCookie(request: Request, name: string): string | null {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function cookieAttributes(context: OAuthContext, maxAge: number): string {
  const path = new URL(context.issuer).pathname.replace(/\/+$/, "") + "/oauth2/authorize";
  const secure = context.issuer.startsWith("https:") ? "; Secure" : "";
  return `; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure}`;
}

// ---------------------------------------------------------------- authorize

async function authorizeGet(context: OAuthContext, _request: Request, url: URL): Promise<Response> {
  const params = toForm(url.searchParams);
  const clientId = params.get("client_id");
  const client = clientId && !params.repeated.includes("client_id")
    ? await context.registry.get(clientId)
    : null;
  if (!client) {
    return page(
      400,
      renderErrorPage(
        "Unknown application",
        "The application that sent you here is not registered with this server.",
      ),
    );
  }
  let redirectUri = params.get("redirect_uri");
  if (redirectUri === null && client.redirectUris.length === 1) {
    redirectUri = client.redirectUris[0];
  }
  if (
    redirectUri === null || params.repeated.includes("redirect_uri") ||
    !redirectAllowed(client, redirectUri, context.config.allow_oob)
  ) {
    return page(
      400,
      renderErrorPage(
        "Invalid redirect address",
        "The application asked to return to an address that is not registered for it.",
      ),
    );
  }
  // From here on the redirect URI is trusted, so errors go back to the client.
  const state = params.get("state");
  const fail = (error: string, description: string): Response =>
    redirectUri === OOB_REDIRECT_URI
      ? page(400, renderErrorPage("Request refused", description))
      : redirect(withParams(redirectUri, {
        error,
        error_description: description,
        state,
        iss: context.issuer,
      }));
  if (params.repeated.length > 0) {
    return fail("invalid_request", `repeated parameter: ${params.repeated.join(", ")}`);
  }
  if (params.get("request") !== null || params.get("request_uri") !== null) {
    return fail("request_not_supported", "request objects are not supported");
  }
  if (params.get("prompt")?.split(" ").includes("none")) {
    // There is no sign-in session to reuse: every authorization shows the form.
    return fail("login_required", "the user must sign in");
  }
  if (params.get("response_type") !== "code") {
    return fail("unsupported_response_type", "only response_type=code is supported");
  }
  const requested = (params.get("scope") ?? client.scopes.join(" ")).split(" ").filter(Boolean);
  if (
    requested.length === 0 ||
    requested.some((s) => !client.scopes.includes(s) && !OPENID_SCOPES.includes(s))
  ) {
    return fail(
      "invalid_scope",
      `allowed scopes: ${[...client.scopes, ...OPENID_SCOPES].join(" ")}`,
    );
  }
  const nonce = params.get("nonce");
  if (nonce !== null && (nonce.length === 0 || nonce.length > MAX_NONCE)) {
    return fail("invalid_request", `nonce must be 1 to ${MAX_NONCE} characters`);
  }
  const challenge = params.get("code_challenge");
  const method = params.get("code_challenge_method") ?? "plain";
  if (challenge === null) {
    // Clients that may act without a secret need PKCE; so does the built-in
    // client, whose documented secret is public knowledge and protects no code.
    if (client.public) {
      return fail("invalid_request", "PKCE with code_challenge_method=S256 is required");
    }
  } else if (method !== "S256") {
    return fail("invalid_request", "code_challenge_method must be S256");
  } else if (!isS256Challenge(challenge)) {
    return fail("invalid_request", "malformed code_challenge");
  }
  const requestId = randomToken(16);
  const csrf = randomToken(24);
  const ttl = context.config.login_ttl_seconds;
  await context.store.putPending(requestId, {
    clientId: client.id,
    redirectUri,
    scope: [...new Set(requested)].join(" "),
    state,
    codeChallenge: challenge,
    csrf,
    loginHint: params.get("login_hint"),
    nonce,
    expiresAt: context.now() + ttl * 1000,
  });
  const cookie = new Headers({
    "set-cookie": `${csrfCookieName(requestId)}=${csrf}${cookieAttributes(context, ttl)}`,
  });
  return page(
    200,
    renderLoginPage({
      action: url.pathname,
      clientName: client.name,
      requestId,
      csrf,
      email: params.get("login_hint") ?? "",
    }),
    formTarget(redirectUri),
    cookie,
  );
}

async function authorizePost(
  context: OAuthContext,
  request: Request,
  url: URL,
  ip: string,
): Promise<Response> {
  const form = await readForm(request, FORM_LIMIT);
  const requestId = form.get("request") ?? "";
  const pending = /^[A-Za-z0-9_-]{1,64}$/.test(requestId)
    ? await context.store.getPending(requestId)
    : null;
  if (!pending) {
    return page(
      400,
      renderErrorPage("Sign-in expired", "This sign-in page has expired or was already used."),
    );
  }
  const csrf = form.get("csrf") ?? "";
  const cookie = readCookie(request, csrfCookieName(requestId)) ?? "";
  if (!safeEqual(csrf, pending.csrf) || !safeEqual(cookie, pending.csrf)) {
    context.audit({ event: "oauth.login", outcome: "failure", reason: "csrf", ip });
    return page(
      403,
      renderErrorPage(
        "Request refused",
        "The sign-in form was not submitted from this server's page.",
      ),
    );
  }
  const client = await context.registry.get(pending.clientId);
  if (!client) {
    return page(400, renderErrorPage("Unknown application", "The application is not registered."));
  }
  const typed = (form.get("email") ?? "").trim();
  const password = form.get("password") ?? "";
  const again = (status: number, error: string): Response =>
    page(
      status,
      renderLoginPage({
        action: url.pathname,
        clientName: client.name,
        requestId,
        csrf: pending.csrf,
        email: typed,
        error,
      }),
      formTarget(pending.redirectUri),
    );
  const auditBase = { event: "oauth.login", ip, client_id: client.id, email: typed.toLowerCase() };
  if (!await context.rateLimit({ action: "login", ip, email: typed.toLowerCase() })) {
    context.audit({ ...auditBase, outcome: "failure", reason: "rate_limited" });
    return again(429, "Too many sign-in attempts. Wait a few minutes and try again.");
  }
  const address = parseEmail(typed);
  if (!address || password === "") {
    return again(400, "Enter your email address and password.");
  }
  const refusedDomain = async (domain: string): Promise<Response | null> => {
    if (!clientAllowsDomain(client, domain)) {
      context.audit({ ...auditBase, outcome: "failure", reason: "client_domain" });
      return again(403, `${client.name} may not be used with ${domain} accounts.`);
    }
    if (!await context.domainEnabled(domain)) {
      context.audit({ ...auditBase, outcome: "failure", reason: "domain_disabled" });
      return again(403, `Accounts of ${domain} cannot sign in at the moment.`);
    }
    return null;
  };
  const early = await refusedDomain(address.domain);
  if (early) return early;
  const result = await context.authenticator.verifyPassword(address.canonical, password);
  if (!result.ok) {
    context.audit({ ...auditBase, outcome: "failure", reason: result.reason });
    if (result.reason === "temporary_failure") {
      return again(503, "Sign-in is unavailable right now. Please try again shortly.");
    }
    if (result.reason === "domain_disabled") {
      return again(403, `Accounts of ${address.domain} cannot sign in at the moment.`);
    }
    return again(401, "The email address or password is incorrect.");
  }
  // The backend's answer is authoritative for the identity.
  const late = result.domain !== address.domain ? await refusedDomain(result.domain) : null;
  if (late) return late;

  await context.store.deletePending(requestId);
  const code = randomToken(32);
  await context.store.putCode(hashToken(code), {
    clientId: client.id,
    redirectUri: pending.redirectUri,
    codeChallenge: pending.codeChallenge,
    scope: pending.scope,
    email: result.email,
    domain: result.domain,
    sid: randomToken(16),
    nonce: pending.nonce ?? null,
    authTime: Math.floor(context.now() / 1000),
    expiresAt: context.now() + context.config.code_ttl_seconds * 1000,
  });
  context.audit({ ...auditBase, email: result.email, outcome: "success", backend: result.backend });
  const clear = new Headers({
    "set-cookie": `${csrfCookieName(requestId)}=${cookieAttributes(context, 0)}`,
  });
  if (pending.redirectUri === OOB_REDIRECT_URI) return page(200, renderOobPage(code), [], clear);
  return redirect(
    withParams(pending.redirectUri, { code, state: pending.state, iss: context.issuer }),
    clear,
  );
}

// ---------------------------------------------------------------- token

async function issueTokens(
  context: OAuthContext,
  grant: {
    clientId: string;
    email: string;
    domain: string;
    scope: string;
    sid: string;
    nonce?: string | null;
    authTime?: number;
  },
  refresh: string,
): Promise<Response> {
  const access = await signAccessToken(context.keys, {
    issuer: context.issuer,
    audience: context.config.audience,
    clientId: grant.clientId,
    email: grant.email,
    domain: grant.domain,
    scope: grant.scope,
    sid: grant.sid,
    ttlSeconds: context.config.access_token_ttl_seconds,
  }, context.now());
  const idToken = grant.scope.split(" ").includes("openid")
    ? await signIdToken(context.keys, {
      issuer: context.issuer,
      clientId: grant.clientId,
      email: grant.email,
      nonce: grant.nonce,
      authTime: grant.authTime,
      ttlSeconds: context.config.access_token_ttl_seconds,
    }, context.now())
    : undefined;
  return json({
    access_token: access.token,
    token_type: "Bearer",
    expires_in: access.exp - access.iat,
    refresh_token: refresh,
    scope: grant.scope,
    ...(idToken ? { id_token: idToken } : {}),
  });
}

function sessionRevocationUntil(context: OAuthContext): number {
  return context.now() +
    (context.config.refresh_token_ttl_seconds + context.config.access_token_ttl_seconds) * 1000;
}

async function token(
  context: OAuthContext,
  request: Request,
  _url: URL,
  ip: string,
): Promise<Response> {
  const form = await readForm(request, FORM_LIMIT);
  if (form.repeated.length > 0) {
    return oauthError("invalid_request", `repeated parameter: ${form.repeated.join(", ")}`);
  }
  const auth = await authenticateClient(request, form, {
    registry: context.registry,
    verifySecret: context.verifySecret,
    allowPublic: true,
  });
  if (!auth.ok) {
    context.audit({ event: "oauth.token", outcome: "failure", reason: "invalid_client", ip });
    return auth.response;
  }
  const client = auth.client;
  const grantType = form.get("grant_type");
  const audit = (outcome: string, extra: Record<string, unknown>) =>
    context.audit({
      event: "oauth.token",
      grant_type: grantType,
      client_id: client.id,
      ip,
      outcome,
      ...extra,
    });

  if (grantType === "authorization_code") {
    const code = form.get("code");
    if (!code) return oauthError("invalid_request", "code is required");
    const consumed = await context.store.consumeCode(hashToken(code));
    if (consumed.status === "unknown") {
      audit("failure", { reason: "unknown_code" });
      return oauthError("invalid_grant", "the code is invalid or expired");
    }
    const record = consumed.record;
    if (consumed.status === "reused") {
      // RFC 6749 4.1.2: revoke what the code issued.
      await context.store.revokeSession(record.sid, sessionRevocationUntil(context));
      audit("failure", { reason: "code_reused", email: record.email });
      return oauthError("invalid_grant", "the code was already used");
    }
    if (record.clientId !== client.id) {
      audit("failure", { reason: "code_client_mismatch", email: record.email });
      return oauthError("invalid_grant", "the code was issued to another client");
    }
    const redirectUri = form.get("redirect_uri");
    const redirectOk = redirectUri === null
      ? client.redirectUris.length === 1 && client.redirectUris[0] === record.redirectUri
      : redirectUri === record.redirectUri;
    if (!redirectOk) {
      audit("failure", { reason: "redirect_mismatch", email: record.email });
      return oauthError("invalid_grant", "redirect_uri does not match the authorization request");
    }
    const verifier = form.get("code_verifier");
    if (record.codeChallenge !== null) {
      if (
        !verifier || !isCodeVerifier(verifier) || !safeEqual(s256(verifier), record.codeChallenge)
      ) {
        audit("failure", { reason: "pkce", email: record.email });
        return oauthError("invalid_grant", "PKCE verification failed");
      }
    } else if (verifier !== null) {
      return oauthError("invalid_grant", "code_verifier sent but no code_challenge was");
    }
    if (!await context.domainEnabled(record.domain)) {
      audit("failure", { reason: "domain_disabled", email: record.email });
      return oauthError("invalid_grant", "the user's domain is disabled");
    }
    const refresh = randomToken(32);
    await context.store.putRefresh(hashToken(refresh), {
      clientId: client.id,
      scope: record.scope,
      email: record.email,
      domain: record.domain,
      sid: record.sid,
      expiresAt: context.now() + context.config.refresh_token_ttl_seconds * 1000,
    });
    audit("success", { email: record.email });
    return await issueTokens(context, { ...record, clientId: client.id }, refresh);
  }

  if (grantType === "refresh_token") {
    const presented = form.get("refresh_token");
    if (!presented) return oauthError("invalid_request", "refresh_token is required");
    const oldHash = hashToken(presented);
    const found = await context.store.getRefresh(oldHash);
    if (!found || found.record.clientId !== client.id) {
      audit("failure", { reason: found ? "refresh_client_mismatch" : "unknown_refresh" });
      return oauthError("invalid_grant", "the refresh token is invalid or expired");
    }
    const refresh = randomToken(32);
    const rotated = found.used ? { status: "reused" as const, record: found.record } : await context
      .store.rotateRefresh(
        oldHash,
        hashToken(refresh),
        context.now() + context.config.refresh_token_ttl_seconds * 1000,
      );
    if (rotated.status === "unknown") {
      return oauthError("invalid_grant", "the refresh token is invalid or expired");
    }
    const record = rotated.record;
    if (rotated.status === "reused") {
      // A rotated token came back: someone holds a copy. End the whole family.
      await context.store.revokeSession(record.sid, sessionRevocationUntil(context));
      audit("failure", { reason: "refresh_reused", email: record.email });
      return oauthError("invalid_grant", "the refresh token was already used");
    }
    if (await context.store.isRevoked({ sid: record.sid })) {
      audit("failure", { reason: "revoked", email: record.email });
      return oauthError("invalid_grant", "the refresh token was revoked");
    }
    if (!await context.domainEnabled(record.domain)) {
      await context.store.revokeSession(record.sid, sessionRevocationUntil(context));
      audit("failure", { reason: "domain_disabled", email: record.email });
      return oauthError("invalid_grant", "the user's domain is disabled");
    }
    let scope = record.scope;
    const asked = form.get("scope");
    if (asked !== null) {
      const granted = record.scope.split(" ");
      const narrowed = asked.split(" ").filter(Boolean);
      if (narrowed.length === 0 || narrowed.some((s) => !granted.includes(s))) {
        return oauthError("invalid_scope", "the scope exceeds what was granted");
      }
      scope = [...new Set(narrowed)].join(" ");
    }
    audit("success", { email: record.email });
    return await issueTokens(context, { ...record, scope }, refresh);
  }

  return oauthError(
    grantType ? "unsupported_grant_type" : "invalid_request",
    grantType ? "supported: authorization_code, refresh_token" : "grant_type is required",
  );
}

// ---------------------------------------------------------------- resources

async function jwks(context: OAuthContext): Promise<Response> {
  // Another node may have rotated the shared key set.
  await context.keys.refresh();
  return new Response(JSON.stringify(context.keys.publicJwks()), {
    headers: {
      "content-type": "application/jwk-set+json",
      "cache-control": "public, max-age=300",
      "x-content-type-options": "nosniff",
      "access-control-allow-origin": "*",
    },
  });
}

async function userinfo(context: OAuthContext, request: Request): Promise<Response> {
  await request.body?.cancel();
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header);
  if (!match) {
    return json({ error: "invalid_request" }, 401, { "www-authenticate": 'Bearer realm="oauth"' });
  }
  const checked = await context.verifier.verifyAccessToken(match[1]);
  if (!checked.ok) {
    return json({ error: "invalid_token" }, 401, {
      "www-authenticate": 'Bearer realm="oauth", error="invalid_token"',
    });
  }
  const { email, domain } = checked.token;
  return json({ sub: checked.token.claims.sub ?? email, email, email_verified: true, domain });
}

function isJwt(token: string): boolean {
  return token.split(".").length === 3;
}

async function introspect(context: OAuthContext, request: Request): Promise<Response> {
  const form = await readForm(request, FORM_LIMIT);
  const auth = await authenticateClient(request, form, {
    registry: context.registry,
    verifySecret: context.verifySecret,
    allowPublic: false,
  });
  if (!auth.ok) return auth.response;
  const presented = form.get("token");
  if (!presented) return oauthError("invalid_request", "token is required");
  if (isJwt(presented)) {
    const checked = await context.verifier.verifyAccessToken(presented);
    if (!checked.ok) return json({ active: false });
    const claims = checked.token.claims;
    return json({
      active: true,
      token_type: "Bearer",
      scope: claims.scope,
      client_id: claims.client_id,
      username: checked.token.email,
      email: checked.token.email,
      email_verified: true,
      domain: checked.token.domain,
      sub: claims.sub,
      aud: claims.aud,
      iss: claims.iss,
      exp: claims.exp,
      iat: claims.iat,
      nbf: claims.nbf,
      jti: claims.jti,
    });
  }
  const found = await context.store.getRefresh(hashToken(presented));
  if (
    !found || found.used || found.record.clientId !== auth.client.id ||
    await context.store.isRevoked({ sid: found.record.sid })
  ) {
    return json({ active: false });
  }
  return json({
    active: true,
    token_type: "refresh_token",
    scope: found.record.scope,
    client_id: found.record.clientId,
    username: found.record.email,
    sub: found.record.email,
    iss: context.issuer,
    exp: Math.floor(found.record.expiresAt / 1000),
  });
}

async function revoke(
  context: OAuthContext,
  request: Request,
  _url: URL,
  ip: string,
): Promise<Response> {
  const form = await readForm(request, FORM_LIMIT);
  const auth = await authenticateClient(request, form, {
    registry: context.registry,
    verifySecret: context.verifySecret,
    allowPublic: true,
  });
  if (!auth.ok) return auth.response;
  const presented = form.get("token");
  if (!presented) return oauthError("invalid_request", "token is required");
  const done = () => new Response(null, { status: 200, headers: { "cache-control": "no-store" } });
  const notYours = () =>
    oauthError("unauthorized_client", "the token was issued to another client");
  if (isJwt(presented)) {
    const checked = await context.verifier.verifyAccessToken(presented);
    if (!checked.ok) return done();
    if (checked.token.clientId !== auth.client.id) return notYours();
    if (checked.token.jti) {
      await context.store.revokeToken(checked.token.jti, checked.token.exp * 1000 + 60_000);
    }
    context.audit({
      event: "oauth.revoke",
      token_type: "access_token",
      client_id: auth.client.id,
      email: checked.token.email,
      ip,
    });
    return done();
  }
  const found = await context.store.getRefresh(hashToken(presented));
  if (!found) return done();
  if (found.record.clientId !== auth.client.id) return notYours();
  // Revoking a refresh token ends its family, access tokens included (RFC 7009 2.1).
  await context.store.revokeSession(found.record.sid, sessionRevocationUntil(context));
  context.audit({
    event: "oauth.revoke",
    token_type: "refresh_token",
    client_id: auth.client.id,
    email: found.record.email,
    ip,
  });
  return done();
}

// ---------------------------------------------------------------- registration

async function register(
  context: OAuthContext,
  request: Request,
  _url: URL,
  ip: string,
): Promise<Response> {
  if (!context.config.dynamic_registration) {
    await request.body?.cancel();
    return new Response("not found\n", { status: 404, headers: plainHeaders() });
  }
  if (!/^application\/json\s*(;|$)/i.test(request.headers.get("content-type") ?? "")) {
    await request.body?.cancel();
    return oauthError("invalid_client_metadata", "expected application/json", 415);
  }
  if (!await context.rateLimit({ action: "register", ip, email: "" })) {
    await request.body?.cancel();
    return oauthError("temporarily_unavailable", "too many registrations", 429);
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(await readBody(request, REGISTRATION_LIMIT)));
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error();
  } catch (error) {
    if (error instanceof HttpError) throw error;
    return oauthError("invalid_client_metadata", "the body is not a JSON object");
  }
  const uris = doc.redirect_uris;
  if (
    !Array.isArray(uris) || uris.length === 0 || uris.length > 10 ||
    !uris.every((u) => typeof u === "string" && u.length <= 2000 && registrableRedirect(u))
  ) {
    return oauthError(
      "invalid_redirect_uri",
      "redirect_uris must be loopback or private-use scheme URIs (native clients only)",
    );
  }
  const method = doc.token_endpoint_auth_method ?? "none";
  if (method !== "none") {
    return oauthError("invalid_client_metadata", "only public clients (none) may register");
  }
  const grants = doc.grant_types ?? ["authorization_code", "refresh_token"];
  const responses = doc.response_types ?? ["code"];
  if (
    !Array.isArray(grants) ||
    !grants.every((g) => g === "authorization_code" || g === "refresh_token") ||
    !Array.isArray(responses) || !responses.every((r) => r === "code")
  ) {
    return oauthError("invalid_client_metadata", "unsupported grant_types or response_types");
  }
  const name = typeof doc.client_name === "string" ? doc.client_name.slice(0, 100) : null;
  const issuedAt = context.now();
  const id = `dyn-${randomToken(16)}`;
  await context.store.putClient({ id, name, redirectUris: uris as string[], issuedAt });
  context.audit({ event: "oauth.register", client_id: id, ip });
  return json({
    client_id: id,
    client_id_issued_at: Math.floor(issuedAt / 1000),
    ...(name ? { client_name: name } : {}),
    redirect_uris: uris,
    token_endpoint_auth_method: "none",
    grant_types: grants,
    response_types: responses,
    application_type: "native",
    scope: "smtp.send",
  }, 201);
}
