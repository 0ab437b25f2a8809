/**
 * The `[oauth]` configuration section: the embedded OAuth2 authorization
 * server (endpoints, keys, token lifetimes, clients) and, under
 * `[oauth.external]`, an external identity provider whose tokens the relay
 * accepts instead.
 *
 * @example
 * ```toml
 * [oauth]
 * enabled = true
 * listen = "127.0.0.1:9000"
 * issuer = "https://mail.example.com"   # unset: follows listen (http://localhost:9000)
 *
 * [[oauth.clients]]
 * id = "webmail"
 * secret_hash = "{SSHA512}..."
 * redirect_uris = ["https://webmail.example.com/oauth/callback"]
 * domains = ["example.com"]
 * ```
 *
 * @module
 */
import { z } from "zod";
import { listenAddress, parseListen } from "./listen.ts";

/**
 * `{SSHA512}` of `thunderbird-secret`, the built-in client's secret in the
 * prototype's documentation (public knowledge: it identifies a client, it
 * guards nothing; PKCE protects the code).
 */
export const DEFAULT_CLIENT_SECRET_HASH =
  "{SSHA512}vISQJBcXR10pMsqxm0Wr65z5h0BYlRD04F0PTN6rRo5BZsymUy98p5ctr3nHHOC/Q4Mgofa5EeHL01sRMACPSDpOLBFaVo6KomSrnTjLYyQ=";

/** An absolute http(s) URL without a fragment. */
const httpUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hash === "";
  } catch {
    return false;
  }
}, "expected an absolute http:// or https:// URL without a fragment");

/** A redirect URI: absolute, no fragment (RFC 6749 3.1.2). */
const redirectUri = z.string().refine((value) => {
  try {
    return new URL(value).hash === "" && !value.includes("#");
  } catch {
    return false;
  }
}, "expected an absolute URI without a fragment");

/** An OAuth scope token (RFC 6749 3.3). */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, "expected a scope token");

/** One registered OAuth client. */
export const oauthClientSchema = z.strictObject({
  /** The `client_id`. */
  id: z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/, "expected printable ASCII, no spaces"),
  /** Shown on the login page ("<name> wants to send mail as you"); defaults to the id. */
  name: z.string().min(1).max(100).optional(),
  /**
   * Hash of the client secret (`{ARGON2ID}$argon2id$...`, `{SSHA512}...`,
   * `{SSHA256}...`). Absent: a public (native) client, which must use PKCE.
   */
  secret_hash: z.string().min(1).optional(),
  /**
   * Redirect URIs, matched exactly. Public clients may also use any loopback
   * `http://127.0.0.1:<port>`, `http://[::1]:<port>`, `http://localhost:<port>`
   * and `https://localhost` URI (RFC 8252 7.3).
   */
  redirect_uris: z.array(redirectUri).default([]),
  /** Scopes the client may ask for. */
  scopes: z.array(scopeToken).min(1).default(["smtp.send"]),
  /** User domains that may sign in through this client; empty: all. */
  domains: z.array(z.string().min(1)).default([]),
});

/** An external identity provider whose tokens the relay accepts. */
export const oauthExternalSchema = z.strictObject({
  /** Verify JWT access tokens against this JWKS (fetched and cached). */
  jwks_url: httpUrl.optional(),
  /** Or ask this RFC 7662 introspection endpoint (results cached). */
  introspection_url: httpUrl.optional(),
  /** Client credentials for the introspection endpoint. */
  client_id: z.string().min(1).optional(),
  client_secret: z.string().min(1).optional(),
  /** The expected `iss`; required with `jwks_url`. */
  issuer: z.string().min(1).optional(),
  /** The expected `aud`: "smtp" by default with `jwks_url`; unchecked by introspection if unset. */
  audience: z.string().min(1).optional(),
  /** The scope a token needs to send mail. */
  required_scope: scopeToken.default("smtp.send"),
  /** Seconds an introspection result is cached (never past the token's `exp`). */
  cache_seconds: z.number().int().min(0).max(3600).default(300),
  /** The claim holding the user's address; no other claim is taken for it. */
  email_claim: z.string().min(1).default("email"),
  /**
   * The claim that must be `true` for `email_claim` to count (OpenID Connect's
   * `email_verified`). `""` accepts the address unverified: only for an IdP
   * whose `email_claim` always holds an address it owns (e.g. `upn`).
   */
  email_verified_claim: z.string().default("email_verified"),
}).superRefine((value, ctx) => {
  if (value.jwks_url && value.introspection_url) {
    ctx.addIssue({
      code: "custom",
      path: ["introspection_url"],
      message: "set jwks_url or introspection_url, not both",
    });
  }
  if (value.jwks_url && !value.issuer) {
    ctx.addIssue({ code: "custom", path: ["issuer"], message: "required with jwks_url" });
  }
  if (value.introspection_url && (!value.client_id || !value.client_secret)) {
    ctx.addIssue({
      code: "custom",
      path: ["client_id"],
      message: "client_id and client_secret are required with introspection_url",
    });
  }
}).prefault({});

/** The `[oauth]` section. */
export const oauthSchema = z.strictObject({
  /** Run the embedded authorization server (on by default: local, loopback only). */
  enabled: z.boolean().default(true),
  /**
   * Where it listens. Port 0 (tests) binds a free port, and the issuer's
   * port is then replaced by the bound one.
   */
  listen: listenAddress("127.0.0.1:9000").default("127.0.0.1:9000"),
  /**
   * The issuer identifier: the public base URL of the server (RFC 8414).
   * Unset: follows `listen` (see {@link oauthIssuer}).
   */
  issuer: httpUrl.refine((value) => !new URL(value).search, "must not have a query").optional(),
  /** The signing key set (a JWK set with private keys), created on first start, mode 0600. */
  keys_file: z.string().min(1).default("data/oauth/keys.json"),
  /** Days a signing key is used before a new one is made; 0: never rotate. */
  rotate_days: z.number().int().min(0).max(3650).default(90),
  /** Lifetime of access tokens (JWT). */
  access_token_ttl_seconds: z.number().int().min(60).max(86400).default(3600),
  /** Lifetime of each refresh token (rotated on every use). */
  refresh_token_ttl_seconds: z.number().int().min(60).max(31_536_000).default(2_592_000),
  /** Lifetime of authorization codes. */
  code_ttl_seconds: z.number().int().min(10).max(600).default(60),
  /** Seconds the login page stays valid after the authorization request. */
  login_ttl_seconds: z.number().int().min(60).max(3600).default(600),
  /** Accept `urn:ietf:wg:oauth:2.0:oob` and show the code on the page. */
  allow_oob: z.boolean().default(false),
  /** Accept RFC 7591 registration of public native clients at `/oauth2/register`. */
  dynamic_registration: z.boolean().default(false),
  /** The `aud` of access tokens, and what the relay requires. */
  audience: z.string().min(1).default("smtp"),
  /** Register the client `thunderbird-email-client` (scope smtp.send; PKCE without a secret). */
  default_client: z.boolean().default(true),
  /**
   * Hash of the secret the built-in client may also authenticate with
   * (`client_secret_post` or Basic), for clients set up from the prototype's
   * documents. Default: the documented `thunderbird-secret`; empty: PKCE only.
   */
  default_client_secret_hash: z.string().default(DEFAULT_CLIENT_SECRET_HASH),
  /** Registered clients. */
  clients: z.array(oauthClientSchema).default([]).superRefine((clients, ctx) => {
    const seen = new Set<string>();
    clients.forEach((client, index) => {
      if (seen.has(client.id)) {
        ctx.addIssue({ code: "custom", path: [index, "id"], message: "duplicate client id" });
      }
      seen.add(client.id);
    });
  }),
  /** An external identity provider (see {@link oauthExternalSchema}). */
  external: oauthExternalSchema,
}).prefault({});

const LOOPBACK_OR_ANY = new Set(["127.0.0.1", "::1", "localhost", "0.0.0.0", "::"]);

/**
 * The issuer in use: `oauth.issuer` when set, else derived from
 * `oauth.listen` (`127.0.0.1:9000` gives `http://localhost:9000`), so moving
 * the listener moves discovery and every endpoint with it. No trailing slash.
 */
export function oauthIssuer(config: { issuer?: string; listen: string }): string {
  if (config.issuer !== undefined) return config.issuer.replace(/\/+$/, "");
  const { hostname: host, port } = parseListen(config.listen);
  const name = LOOPBACK_OR_ANY.has(host) ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/**
 * Why an explicit `oauth.issuer` does not point at `oauth.listen` (another
 * port, or another host than a loopback or wildcard listener answers to), or
 * null when it does or when the issuer is derived. Behind a reverse proxy a
 * mismatch is expected; otherwise discovery sends clients nowhere.
 */
export function issuerMismatch(config: { issuer?: string; listen: string }): string | null {
  if (config.issuer === undefined) return null;
  const { hostname: host, port } = parseListen(config.listen);
  const url = new URL(config.issuer);
  const issuerPort = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const issuerHost = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (port !== 0 && issuerPort !== port) return `port ${issuerPort} is not the listener's ${port}`;
  const any = host === "0.0.0.0" || host === "::";
  const loopback = LOOPBACK_OR_ANY.has(host) && !any;
  if (!any && issuerHost !== host && !(loopback && LOOPBACK_OR_ANY.has(issuerHost))) {
    return `host ${issuerHost} is not the listener's ${host}`;
  }
  return null;
}

/** The validated `[oauth]` section. */
export type OAuthConfig = z.infer<typeof oauthSchema>;
/** One validated `[[oauth.clients]]` entry. */
export type OAuthClientConfig = z.infer<typeof oauthClientSchema>;
/** The validated `[oauth.external]` section. */
export type OAuthExternalConfig = z.infer<typeof oauthExternalSchema>;
