/**
 * Server-side OAuth state behind a small port: pending login requests,
 * authorization codes, refresh-token families, revocations and dynamically
 * registered clients. One node uses {@link MemoryOAuthStore}; many nodes
 * share a Redis implementation of the same interface.
 *
 * Codes and refresh tokens are stored under a hash of their value (see
 * `hashToken` in tokens.ts), so a dump of the store grants nothing.
 * Every method is atomic with respect to the others: that is what makes
 * code and refresh-token reuse detectable.
 *
 * @module
 */

/** A login page waiting for the user's email and password. */
export interface PendingAuthorization {
  clientId: string;
  redirectUri: string;
  /** Space-separated granted scope. */
  scope: string;
  state: string | null;
  codeChallenge: string | null;
  /** The CSRF token the login form must echo (also set as a cookie). */
  csrf: string;
  /** Pre-fills the email field (`login_hint`). */
  loginHint: string | null;
  /** OpenID `nonce`, echoed in the ID token. */
  nonce?: string | null;
  /** Epoch milliseconds. */
  expiresAt: number;
}

/** What an authorization code stands for. */
export interface CodeRecord {
  clientId: string;
  redirectUri: string;
  codeChallenge: string | null;
  scope: string;
  email: string;
  domain: string;
  /**
   * The session (token family) the code starts: every token issued from
   * it carries this `sid`, so reuse of the code revokes them all.
   */
  sid: string;
  /** OpenID `nonce` of the authorization request. */
  nonce?: string | null;
  /** Epoch seconds the user signed in (the ID token's `auth_time`). */
  authTime?: number;
  /** Epoch milliseconds. */
  expiresAt: number;
}

/** What a refresh token stands for. */
export interface RefreshRecord {
  clientId: string;
  scope: string;
  email: string;
  domain: string;
  sid: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

/** A client registered through RFC 7591 (public, native). */
export interface RegisteredClient {
  id: string;
  name: string | null;
  redirectUris: string[];
  /** Epoch milliseconds. */
  issuedAt: number;
}

/** The outcome of redeeming a code. */
export type ConsumeCodeResult =
  | { status: "fresh"; record: CodeRecord }
  /** The code was redeemed before: revoke what it issued. */
  | { status: "reused"; record: CodeRecord }
  | { status: "unknown" };

/** The outcome of rotating a refresh token. */
export type RotateRefreshResult =
  | { status: "rotated"; record: RefreshRecord }
  /** The token was already rotated: a stolen copy is in play; revoke the family. */
  | { status: "reused"; record: RefreshRecord }
  | { status: "unknown" };

/** The OAuth state port. Every time is epoch milliseconds. */
export interface OAuthStore {
  putPending(id: string, record: PendingAuthorization): Promise<void>;
  getPending(id: string): Promise<PendingAuthorization | null>;
  deletePending(id: string): Promise<void>;

  /** Stores a new code under its hash. */
  putCode(codeHash: string, record: CodeRecord): Promise<void>;
  /** Marks a code used and returns it; a second call answers `reused`. */
  consumeCode(codeHash: string): Promise<ConsumeCodeResult>;

  putRefresh(tokenHash: string, record: RefreshRecord): Promise<void>;
  /** Looks a refresh token up without using it (introspection). */
  getRefresh(tokenHash: string): Promise<{ record: RefreshRecord; used: boolean } | null>;
  /**
   * Marks `oldHash` used and stores a copy of its record, expiring at
   * `expiresAt`, under `newHash`, in one step. A token already used answers
   * `reused` and stores nothing.
   */
  rotateRefresh(oldHash: string, newHash: string, expiresAt: number): Promise<RotateRefreshResult>;

  /** Revokes a session (token family) until `until`. */
  revokeSession(sid: string, until: number): Promise<void>;
  /** Revokes one access token until it expires. */
  revokeToken(jti: string, until: number): Promise<void>;
  /** Whether the token or its session was revoked. */
  isRevoked(ids: { jti?: string; sid?: string }): Promise<boolean>;

  putClient(client: RegisteredClient): Promise<void>;
  getClient(id: string): Promise<RegisteredClient | null>;

  close(): Promise<void>;
}

/** Options for {@link MemoryOAuthStore}. */
export interface MemoryOAuthStoreOptions {
  /** The clock, epoch milliseconds. */
  now?: () => number;
  /** How long used codes are remembered, to detect reuse (ms). */
  usedCodeRetentionMs?: number;
}

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** One process's OAuth state in Maps, with lazy expiry. */
export class MemoryOAuthStore implements OAuthStore {
  readonly #now: () => number;
  readonly #usedCodeRetentionMs: number;
  readonly #pending = new Map<string, Expiring<PendingAuthorization>>();
  readonly #codes = new Map<string, Expiring<{ record: CodeRecord; used: boolean }>>();
  readonly #refresh = new Map<string, Expiring<{ record: RefreshRecord; used: boolean }>>();
  readonly #revokedSessions = new Map<string, Expiring<true>>();
  readonly #revokedTokens = new Map<string, Expiring<true>>();
  readonly #clients = new Map<string, RegisteredClient>();
  #operations = 0;

  /** Creates an empty store. */
  constructor(options: MemoryOAuthStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#usedCodeRetentionMs = options.usedCodeRetentionMs ?? 24 * 3600_000;
  }

  #get<T>(map: Map<string, Expiring<T>>, key: string): T | null {
    this.#sweepSometimes();
    const entry = map.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= this.#now()) {
      map.delete(key);
      return null;
    }
    return entry.value;
  }

  /** Drops expired entries every few hundred operations, so idle keys do not pile up. */
  #sweepSometimes(): void {
    if (++this.#operations % 256 !== 0) return;
    const now = this.#now();
    for (
      const map of [
        this.#pending,
        this.#codes,
        this.#refresh,
        this.#revokedSessions,
        this.#revokedTokens,
      ] as Map<string, Expiring<unknown>>[]
    ) {
      for (const [key, entry] of map) if (entry.expiresAt <= now) map.delete(key);
    }
  }

  /** {@inheritDoc OAuthStore.putPending} */
  putPending(id: string, record: PendingAuthorization): Promise<void> {
    this.#pending.set(id, { value: { ...record }, expiresAt: record.expiresAt });
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.getPending} */
  getPending(id: string): Promise<PendingAuthorization | null> {
    const found = this.#get(this.#pending, id);
    return Promise.resolve(found ? { ...found } : null);
  }

  /** {@inheritDoc OAuthStore.deletePending} */
  deletePending(id: string): Promise<void> {
    this.#pending.delete(id);
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.putCode} */
  putCode(codeHash: string, record: CodeRecord): Promise<void> {
    this.#codes.set(codeHash, {
      value: { record: { ...record }, used: false },
      expiresAt: record.expiresAt + this.#usedCodeRetentionMs,
    });
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.consumeCode} */
  consumeCode(codeHash: string): Promise<ConsumeCodeResult> {
    const entry = this.#get(this.#codes, codeHash);
    if (!entry) return Promise.resolve({ status: "unknown" });
    if (entry.used) return Promise.resolve({ status: "reused", record: { ...entry.record } });
    entry.used = true;
    // An expired, unused code is unknown, but a used one is kept to catch reuse.
    if (entry.record.expiresAt <= this.#now()) return Promise.resolve({ status: "unknown" });
    return Promise.resolve({ status: "fresh", record: { ...entry.record } });
  }

  /** {@inheritDoc OAuthStore.putRefresh} */
  putRefresh(tokenHash: string, record: RefreshRecord): Promise<void> {
    this.#refresh.set(tokenHash, {
      value: { record: { ...record }, used: false },
      expiresAt: record.expiresAt,
    });
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.getRefresh} */
  getRefresh(tokenHash: string): Promise<{ record: RefreshRecord; used: boolean } | null> {
    const entry = this.#get(this.#refresh, tokenHash);
    return Promise.resolve(entry ? { record: { ...entry.record }, used: entry.used } : null);
  }

  /** {@inheritDoc OAuthStore.rotateRefresh} */
  rotateRefresh(
    oldHash: string,
    newHash: string,
    expiresAt: number,
  ): Promise<RotateRefreshResult> {
    const entry = this.#get(this.#refresh, oldHash);
    if (!entry) return Promise.resolve({ status: "unknown" });
    if (entry.used) return Promise.resolve({ status: "reused", record: { ...entry.record } });
    entry.used = true;
    this.#refresh.set(newHash, {
      value: { record: { ...entry.record, expiresAt }, used: false },
      expiresAt,
    });
    return Promise.resolve({ status: "rotated", record: { ...entry.record } });
  }

  /** {@inheritDoc OAuthStore.revokeSession} */
  revokeSession(sid: string, until: number): Promise<void> {
    const previous = this.#revokedSessions.get(sid)?.expiresAt ?? 0;
    this.#revokedSessions.set(sid, { value: true, expiresAt: Math.max(previous, until) });
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.revokeToken} */
  revokeToken(jti: string, until: number): Promise<void> {
    this.#revokedTokens.set(jti, { value: true, expiresAt: until });
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.isRevoked} */
  isRevoked(ids: { jti?: string; sid?: string }): Promise<boolean> {
    const revoked = (ids.jti !== undefined && this.#get(this.#revokedTokens, ids.jti) !== null) ||
      (ids.sid !== undefined && this.#get(this.#revokedSessions, ids.sid) !== null);
    return Promise.resolve(revoked);
  }

  /** {@inheritDoc OAuthStore.putClient} */
  putClient(client: RegisteredClient): Promise<void> {
    this.#clients.set(client.id, { ...client, redirectUris: [...client.redirectUris] });
    return Promise.resolve();
  }

  /** {@inheritDoc OAuthStore.getClient} */
  getClient(id: string): Promise<RegisteredClient | null> {
    const client = this.#clients.get(id);
    return Promise.resolve(client ? { ...client, redirectUris: [...client.redirectUris] } : null);
  }

  /** Forgets everything. */
  close(): Promise<void> {
    for (
      const map of [
        this.#pending,
        this.#codes,
        this.#refresh,
        this.#revokedSessions,
        this.#revokedTokens,
        this.#clients,
      ] as Map<string, unknown>[]
    ) map.clear();
    return Promise.resolve();
  }
}
