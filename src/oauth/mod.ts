/**
 * The embedded OAuth2 authorization server: start it with
 * {@link startOAuthServer}; its `verifier` is the relay's
 * {@link BearerAuthenticator} for XOAUTH2 / OAUTHBEARER, verifying tokens
 * locally from the same key set and store.
 *
 * @example Run the server beside the relay
 * ```ts ignore
 * import { startOAuthServer } from "./src/oauth/mod.ts";
 *
 * const oauth = await startOAuthServer({
 *   config: config.oauth,
 *   authenticator,
 *   domainEnabled: (domain) => !config.domains.disabled.includes(domain),
 * });
 * // session: await oauth.verifier.verifyBearer(user, token)
 * await oauth.close();
 * ```
 *
 * @module
 */
import { listenError, parseListen } from "../config/listen.ts";
import type { PasswordAuthenticator } from "../auth/authenticator.ts";
import { JwtBearerAuthenticator, wellKnown } from "../auth/token_verifier.ts";
import { type OAuthConfig, oauthIssuer } from "../config/oauth_schema.ts";
import { cachedSecretVerifier, type SecretVerifier, verifySecretHash } from "./client_secret.ts";
import type { AutoconfigOptions, MailSettings } from "./autoconfig.ts";
import { ClientRegistry } from "./clients.ts";
import { type KeySetStorage, SigningKeys } from "./keys.ts";
import {
  type AuditHook,
  createHandler,
  endpoints,
  type OAuthContext,
  type RateLimitHook,
} from "./server.ts";
import { MemoryOAuthStore, type OAuthStore } from "./store.ts";

export {
  cachedSecretVerifier,
  hashSecretSsha512,
  type SecretVerifier,
  verifySecretHash,
} from "./client_secret.ts";
export {
  ClientRegistry,
  isLoopbackRedirect,
  type OAuthClient,
  OOB_REDIRECT_URI,
  redirectAllowed,
  THUNDERBIRD_CLIENT_ID,
} from "./clients.ts";
export {
  FileKeySetStorage,
  type KeySetStorage,
  SigningKeys,
  type SigningKeysOptions,
} from "./keys.ts";
export { RedisKeySetStorage, RedisOAuthStore, type RedisOAuthStoreOptions } from "./redis_store.ts";
export {
  appleMobileconfig,
  type AutoconfigOptions,
  autodiscoverResponse,
  escapeXml,
  type MailSettings,
  thunderbirdConfig,
} from "./autoconfig.ts";
export { type AuditHook, metadata, type RateLimitHook, type RateLimitKey } from "./server.ts";
export {
  type CodeRecord,
  type ConsumeCodeResult,
  MemoryOAuthStore,
  type MemoryOAuthStoreOptions,
  type OAuthStore,
  type PendingAuthorization,
  type RefreshRecord,
  type RegisteredClient,
  type RotateRefreshResult,
} from "./store.ts";
export { hashToken, randomToken, s256, signAccessToken } from "./tokens.ts";

/** Options for {@link startOAuthServer}. */
export interface OAuthServerOptions {
  /** The `[oauth]` section. */
  config: OAuthConfig;
  /** Checks the login page's email and password. */
  authenticator: PasswordAuthenticator;
  /** Asked before every login attempt; default: always allowed. */
  rateLimit?: RateLimitHook;
  /** Receives security events; default: dropped. */
  audit?: AuditHook;
  /** Whether users of a domain may sign in and use tokens; default: all. */
  domainEnabled?: (domain: string) => boolean | Promise<boolean>;
  /** Server-side state; default: a new {@link MemoryOAuthStore} (closed with the server). */
  store?: OAuthStore;
  /** Where the signing keys live; default: `config.keys_file`. */
  keyStorage?: KeySetStorage;
  /** How often the key set is checked for another node's rotation (ms); default 30 s. */
  keysReloadIntervalMs?: number;
  /** Client-secret verification; default: {@link verifySecretHash} with a success cache. */
  verifySecret?: SecretVerifier;
  /**
   * Serve client autoconfig for these domains and settings (the OAuth
   * endpoints are filled in by the server); absent: not served.
   */
  autoconfig?: {
    knownDomain: AutoconfigOptions["knownDomain"];
    settings(): Omit<MailSettings, "oauth">;
  };
  /** Aborting it closes the server. */
  signal?: AbortSignal;
  /** The clock, epoch milliseconds. */
  now?: () => number;
}

/** A running authorization server. */
export interface OAuthServer {
  /** Where it listens, e.g. `http://127.0.0.1:9000`. */
  url: string;
  /** The issuer identifier in tokens and metadata. */
  issuer: string;
  /** Verifies our access tokens for SMTP AUTH, locally. */
  verifier: JwtBearerAuthenticator;
  keys: SigningKeys;
  store: OAuthStore;
  /** Stops listening and releases the store it created. */
  close(): Promise<void>;
}

/**
 * The issuer for a bound port: with `listen` on port 0 (tests), the
 * issuer's port is replaced by the one actually bound.
 */
export function resolveIssuer(issuer: string, listenPort: number, boundPort: number): string {
  const normalized = issuer.replace(/\/+$/, "");
  if (listenPort !== 0) return normalized;
  const url = new URL(normalized);
  url.port = String(boundPort);
  return url.href.replace(/\/+$/, "");
}

/** Options for {@link createOAuthVerifier}. */
export interface OAuthVerifierOptions {
  /** The `[oauth]` section (issuer, audience, keys_file, clients). */
  config: OAuthConfig;
  /** Revocations; without a shared store, revocation is not seen across processes. */
  store?: OAuthStore;
  domainEnabled?: (domain: string) => boolean | Promise<boolean>;
  /** Keys already loaded (the server's); default: the keys file, read-only. */
  keys?: SigningKeys;
  /** The issuer, when it differs from `config.issuer` (port 0). */
  issuer?: string;
  now?: () => number;
}

/**
 * A verifier for our own tokens on a relay node: keys from the key file
 * (re-read when it changes), revocations from the store, client and domain
 * policy from config.
 */
export async function createOAuthVerifier(
  options: OAuthVerifierOptions,
): Promise<JwtBearerAuthenticator> {
  const { config } = options;
  const keys = options.keys ?? await SigningKeys.open({
    file: config.keys_file,
    rotateDays: config.rotate_days,
    accessTokenTtlSeconds: config.access_token_ttl_seconds,
    readOnly: true,
    now: options.now,
  });
  const store = options.store;
  const registry = new ClientRegistry(config, store ?? new MemoryOAuthStore());
  const issuer = options.issuer ?? oauthIssuer(config);
  return new JwtBearerAuthenticator({
    issuer,
    audience: config.audience,
    keys: keys.getKey,
    isRevoked: store ? (ids) => store.isRevoked(ids) : undefined,
    domainEnabled: options.domainEnabled,
    clientAllowed: (clientId, domain) => registry.allowsDomain(clientId, domain),
    openidConfiguration: wellKnown(issuer),
    now: options.now,
  });
}

/**
 * Starts the authorization server on `config.listen` (127.0.0.1 in tests,
 * port 0 for a free port). Creates the key set on first start.
 */
export async function startOAuthServer(options: OAuthServerOptions): Promise<OAuthServer> {
  const { config } = options;
  const now = options.now ?? Date.now;
  const ownsStore = options.store === undefined;
  const store = options.store ?? new MemoryOAuthStore({ now });
  const keys = await SigningKeys.open({
    file: config.keys_file,
    rotateDays: config.rotate_days,
    accessTokenTtlSeconds: config.access_token_ttl_seconds,
    now,
    ...(options.keyStorage ? { storage: options.keyStorage } : {}),
    ...(options.keysReloadIntervalMs ? { reloadIntervalMs: options.keysReloadIntervalMs } : {}),
  });
  const listen = parseListen(config.listen);
  const registry = new ClientRegistry(config, store);
  const domainEnabled = options.domainEnabled ?? (() => true);

  // The handler needs the issuer, which needs the bound port: fill it in after listen.
  const context = {
    config,
    issuer: "",
    authenticator: options.authenticator,
    registry,
    store,
    keys,
    verifier: undefined as unknown as JwtBearerAuthenticator,
    verifySecret: options.verifySecret ?? cachedSecretVerifier(verifySecretHash, { now }),
    rateLimit: options.rateLimit ?? (() => Promise.resolve(true)),
    audit: options.audit ?? (() => {}),
    domainEnabled,
    autoconfig: null as AutoconfigOptions | null,
    now,
  } satisfies OAuthContext;
  const autoconfig = options.autoconfig;
  if (autoconfig) {
    context.autoconfig = {
      knownDomain: autoconfig.knownDomain,
      settings: () => {
        const urls = endpoints(context.issuer);
        return {
          ...autoconfig.settings(),
          oauth: {
            issuer: context.issuer,
            authorizationEndpoint: urls.authorization_endpoint,
            tokenEndpoint: urls.token_endpoint,
          },
        };
      },
    };
  }

  let handler: ReturnType<typeof createHandler> | null = null;
  const abort = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      signal: abort.signal,
      onListen: () => {},
    }, (request, info) => handler!(request, info));
  } catch (error) {
    if (ownsStore) await store.close();
    throw listenError("oauth.listen", config.listen, error);
  }
  const bound = server.addr as Deno.NetAddr;
  context.issuer = resolveIssuer(oauthIssuer(config), listen.port, bound.port);
  context.verifier = await createOAuthVerifier({
    config,
    store,
    keys,
    domainEnabled,
    issuer: context.issuer,
    now,
  });
  handler = createHandler(context);

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      abort.abort();
      await server.finished;
      if (ownsStore) await store.close();
    })();
    return closing;
  };
  const onAbort = () => void close();
  if (options.signal?.aborted) await close();
  else options.signal?.addEventListener("abort", onAbort, { once: true });

  const host = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  return {
    url: `http://${host}:${bound.port}`,
    issuer: context.issuer,
    verifier: context.verifier,
    keys,
    store,
    close,
  };
}
