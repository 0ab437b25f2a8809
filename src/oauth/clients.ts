/**
 * OAuth clients: the configured ones, the built-in Thunderbird client, and
 * those registered dynamically (RFC 7591, public native clients only).
 * Also the redirect URI rules: exact match for registered URIs, any port on
 * loopback for native clients (RFC 8252 7.3), out-of-band only when allowed.
 *
 * @module
 */
import { normalizeDomain } from "../mail/mod.ts";
import type { OAuthConfig } from "../config/oauth_schema.ts";
import type { OAuthStore } from "./store.ts";

/** The built-in client Thunderbird uses (public; may also send the documented secret). */
export const THUNDERBIRD_CLIENT_ID = "thunderbird-email-client";
/** The out-of-band redirect: the code is shown on the page. */
export const OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob";

/** A client as the server sees it. */
export interface OAuthClient {
  id: string;
  /** Shown on the login page. */
  name: string;
  /** Hash of the client secret; `null`: none (a public client). */
  secretHash: string | null;
  /**
   * May act without a secret (PKCE required then): public clients, and the
   * built-in client, which accepts its documented secret as well.
   */
  public: boolean;
  redirectUris: string[];
  scopes: string[];
  /** Normalised user domains allowed; empty: all. */
  domains: string[];
}

/** Looks clients up in config first, then among dynamically registered ones. */
export class ClientRegistry {
  readonly #configured = new Map<string, OAuthClient>();
  readonly #store: OAuthStore;

  /** Indexes the configured clients (and the built-in one unless disabled or overridden). */
  constructor(
    config: Pick<OAuthConfig, "clients" | "default_client" | "default_client_secret_hash">,
    store: OAuthStore,
  ) {
    this.#store = store;
    if (config.default_client) {
      this.#configured.set(THUNDERBIRD_CLIENT_ID, {
        id: THUNDERBIRD_CLIENT_ID,
        name: "Thunderbird",
        secretHash: config.default_client_secret_hash || null,
        public: true,
        redirectUris: [],
        scopes: ["smtp.send"],
        domains: [],
      });
    }
    for (const client of config.clients) {
      this.#configured.set(client.id, {
        id: client.id,
        name: client.name ?? client.id,
        secretHash: client.secret_hash ?? null,
        public: client.secret_hash === undefined,
        redirectUris: client.redirect_uris,
        scopes: client.scopes,
        domains: client.domains.map((d) => normalizeDomain(d) ?? d.toLowerCase()),
      });
    }
  }

  /** The client with this id, or `null`. */
  async get(id: string): Promise<OAuthClient | null> {
    const configured = this.#configured.get(id);
    if (configured) return configured;
    const registered = await this.#store.getClient(id);
    if (!registered) return null;
    return {
      id: registered.id,
      name: registered.name ?? "An e-mail application",
      secretHash: null,
      public: true,
      redirectUris: registered.redirectUris,
      scopes: ["smtp.send"],
      domains: [],
    };
  }

  /**
   * Whether `clientId` may act for users of `domain`. Unknown client ids
   * (tokens from before a client was removed from config) are refused.
   */
  async allowsDomain(clientId: string | null, domain: string): Promise<boolean> {
    if (clientId === null) return false;
    const client = await this.get(clientId);
    return client !== null && clientAllowsDomain(client, domain);
  }
}

/** Whether a client may sign in users of `domain`. */
export function clientAllowsDomain(client: OAuthClient, domain: string): boolean {
  return client.domains.length === 0 || client.domains.includes(domain);
}

/**
 * Whether `uri` is a loopback redirect a native app may use with any port:
 * `http://127.0.0.1`, `http://[::1]`, `http://localhost`, and
 * `https://localhost` (RFC 8252 7.3), without user info or fragment.
 */
export function isLoopbackRedirect(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  if (url.username || url.password || uri.includes("#")) return false;
  if (url.protocol === "http:") {
    return url.hostname === "127.0.0.1" || url.hostname === "[::1]" ||
      url.hostname === "localhost";
  }
  return url.protocol === "https:" && url.hostname === "localhost";
}

/**
 * Whether a client may use `uri` as its redirect: an exact registered URI;
 * for a client that may be public also any loopback URI; the out-of-band URI only when
 * `allowOob`.
 */
export function redirectAllowed(client: OAuthClient, uri: string, allowOob: boolean): boolean {
  if (uri === OOB_REDIRECT_URI) return allowOob;
  if (client.redirectUris.includes(uri)) return !uri.includes("#");
  return client.public && isLoopbackRedirect(uri);
}

/**
 * Whether a dynamically registered (native, public) client may register
 * `uri`: loopback, or a private-use scheme in reverse-domain form
 * (`com.example.app:/callback`, RFC 8252 7.1).
 */
export function registrableRedirect(uri: string): boolean {
  if (isLoopbackRedirect(uri)) return true;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  return /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/.test(url.protocol) && !uri.includes("#");
}
