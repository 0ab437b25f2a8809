/**
 * The {@link OAuthStore} on Redis or Valkey, shared by every relay node: a
 * code issued by one node is redeemed on another, a refresh token rotates on
 * any node, and reuse of a code or of a rotated refresh token is caught
 * wherever it is presented, because marking "used" is one Lua script.
 *
 * Keys (after the `[state] key_prefix`):
 *
 * | key                        | holds                                   | expires                         |
 * | -------------------------- | --------------------------------------- | ------------------------------- |
 * | `oauth:pending:<id>`       | login-page request and its CSRF token   | with the request                |
 * | `oauth:code:<hash>`        | hash `r` (record JSON), `u` (used 0/1)  | code expiry + reuse retention   |
 * | `oauth:refresh:<hash>`     | hash `r`, `u`                           | with the token                  |
 * | `oauth:revoked:sid:<sid>`  | `1`                                     | when the session's tokens would |
 * | `oauth:revoked:jti:<jti>`  | `1`                                     | when the token would            |
 * | `oauth:client:<id>`        | a registered client (JSON)              | never                           |
 * | `oauth:keys`               | hash `t` (the signing JWK set), `v`     | never                           |
 *
 * Codes and refresh tokens are keyed by their hash, never their value. The
 * signing key set ({@link RedisKeySetStorage}) holds private keys: keep Redis
 * on a private network, with a password, or behind TLS.
 * Unavailability rejects with {@link StateUnavailableError} (the endpoints
 * answer 503, AUTH 454): OAuth never fails open.
 *
 * @module
 */
import type { RedisConnection } from "../state/mod.ts";
import type { KeySetStorage } from "./keys.ts";
import type {
  CodeRecord,
  ConsumeCodeResult,
  OAuthStore,
  PendingAuthorization,
  RefreshRecord,
  RegisteredClient,
  RotateRefreshResult,
} from "./store.ts";

/** Marks a code used: {status, record JSON}. ARGV[1] is the node's clock (ms). */
const CONSUME_CODE = `
local v = redis.call('HMGET', KEYS[1], 'r', 'u')
if not v[1] then return {'unknown'} end
if v[2] == '1' then return {'reused', v[1]} end
redis.call('HSET', KEYS[1], 'u', '1')
local record = cjson.decode(v[1])
if record.expiresAt <= tonumber(ARGV[1]) then return {'unknown'} end
return {'fresh', v[1]}`;

/** Marks a refresh token used and stores its successor; ARGV[1] = new expiry (ms). */
const ROTATE_REFRESH = `
local v = redis.call('HMGET', KEYS[1], 'r', 'u')
if not v[1] then return {'unknown'} end
if v[2] == '1' then return {'reused', v[1]} end
redis.call('HSET', KEYS[1], 'u', '1')
local record = cjson.decode(v[1])
record.expiresAt = tonumber(ARGV[1])
redis.call('HSET', KEYS[2], 'r', cjson.encode(record), 'u', '0')
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
return {'rotated', v[1]}`;

/** Revokes until ARGV[1] (ms), never shortening an earlier, longer revocation. */
const REVOKE = `
if redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then return 1 end
redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
return 0`;

/** Stores the key set if its version is still ARGV[2] ("" = none); the new version, or false. */
const WRITE_KEYS = `
local current = redis.call('HGET', KEYS[1], 'v') or ''
if current ~= ARGV[2] then return false end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'v', ARGV[3])
return ARGV[3]`;

/** Options for {@link RedisOAuthStore}. */
export interface RedisOAuthStoreOptions {
  /** The clock, epoch milliseconds. */
  now?: () => number;
  /** How long used codes are remembered, to detect reuse (ms). */
  usedCodeRetentionMs?: number;
}

/** The OAuth state in Redis; see the module documentation. */
export class RedisOAuthStore implements OAuthStore {
  readonly #redis: RedisConnection;
  readonly #now: () => number;
  readonly #usedCodeRetentionMs: number;

  /** @param redis the shared connection (closed by its owner, not by {@link close}) */
  constructor(redis: RedisConnection, options: RedisOAuthStoreOptions = {}) {
    this.#redis = redis;
    this.#now = options.now ?? Date.now;
    this.#usedCodeRetentionMs = options.usedCodeRetentionMs ?? 24 * 3600_000;
  }

  #key(kind: string, id: string): string {
    return `${this.#redis.prefix}oauth:${kind}:${id}`;
  }

  /** {@inheritDoc OAuthStore.putPending} */
  async putPending(id: string, record: PendingAuthorization): Promise<void> {
    await this.#putJson(this.#key("pending", id), record, record.expiresAt);
  }

  /** {@inheritDoc OAuthStore.getPending} */
  async getPending(id: string): Promise<PendingAuthorization | null> {
    const record = await this.#getJson<PendingAuthorization>(this.#key("pending", id));
    return record && record.expiresAt > this.#now() ? record : null;
  }

  /** {@inheritDoc OAuthStore.deletePending} */
  async deletePending(id: string): Promise<void> {
    await this.#redis.run((client) => client.del(this.#key("pending", id)));
  }

  /** {@inheritDoc OAuthStore.putCode} */
  async putCode(codeHash: string, record: CodeRecord): Promise<void> {
    await this.#putUsable(
      this.#key("code", codeHash),
      record,
      record.expiresAt + this.#usedCodeRetentionMs,
    );
  }

  /** {@inheritDoc OAuthStore.consumeCode} */
  async consumeCode(codeHash: string): Promise<ConsumeCodeResult> {
    const [status, json] = await this.#redis.run((client) =>
      client.eval(CONSUME_CODE, {
        keys: [this.#key("code", codeHash)],
        arguments: [String(this.#now())],
      })
    ) as [string, string?];
    if (status === "unknown" || json === undefined) return { status: "unknown" };
    return { status: status as "fresh" | "reused", record: JSON.parse(json) as CodeRecord };
  }

  /** {@inheritDoc OAuthStore.putRefresh} */
  async putRefresh(tokenHash: string, record: RefreshRecord): Promise<void> {
    await this.#putUsable(this.#key("refresh", tokenHash), record, record.expiresAt);
  }

  /** {@inheritDoc OAuthStore.getRefresh} */
  async getRefresh(tokenHash: string): Promise<{ record: RefreshRecord; used: boolean } | null> {
    const [json, used] = await this.#redis.run((client) =>
      client.hmGet(this.#key("refresh", tokenHash), ["r", "u"])
    );
    if (typeof json !== "string") return null;
    const record = JSON.parse(json) as RefreshRecord;
    if (record.expiresAt <= this.#now()) return null;
    return { record, used: used === "1" };
  }

  /** {@inheritDoc OAuthStore.rotateRefresh} */
  async rotateRefresh(
    oldHash: string,
    newHash: string,
    expiresAt: number,
  ): Promise<RotateRefreshResult> {
    const [status, json] = await this.#redis.run((client) =>
      client.eval(ROTATE_REFRESH, {
        keys: [this.#key("refresh", oldHash), this.#key("refresh", newHash)],
        arguments: [String(Math.ceil(expiresAt))],
      })
    ) as [string, string?];
    if (status === "unknown" || json === undefined) return { status: "unknown" };
    return { status: status as "rotated" | "reused", record: JSON.parse(json) as RefreshRecord };
  }

  /** {@inheritDoc OAuthStore.revokeSession} */
  async revokeSession(sid: string, until: number): Promise<void> {
    await this.#revoke(this.#key("revoked:sid", sid), until);
  }

  /** {@inheritDoc OAuthStore.revokeToken} */
  async revokeToken(jti: string, until: number): Promise<void> {
    await this.#revoke(this.#key("revoked:jti", jti), until);
  }

  /** {@inheritDoc OAuthStore.isRevoked} */
  async isRevoked(ids: { jti?: string; sid?: string }): Promise<boolean> {
    const keys = [
      ...(ids.jti !== undefined ? [this.#key("revoked:jti", ids.jti)] : []),
      ...(ids.sid !== undefined ? [this.#key("revoked:sid", ids.sid)] : []),
    ];
    if (keys.length === 0) return false;
    return await this.#redis.run((client) => client.exists(keys)) > 0;
  }

  /** {@inheritDoc OAuthStore.putClient} */
  async putClient(client: RegisteredClient): Promise<void> {
    const json = JSON.stringify(client);
    await this.#redis.run((c) => c.set(this.#key("client", client.id), json));
  }

  /** {@inheritDoc OAuthStore.getClient} */
  getClient(id: string): Promise<RegisteredClient | null> {
    return this.#getJson<RegisteredClient>(this.#key("client", id));
  }

  /** Nothing to release: the connection belongs to whoever opened it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  async #revoke(key: string, until: number): Promise<void> {
    if (until <= this.#now()) return;
    await this.#redis.run((client) =>
      client.eval(REVOKE, { keys: [key], arguments: [String(Math.ceil(until))] })
    );
  }

  async #putJson(key: string, value: unknown, expiresAt: number): Promise<void> {
    if (expiresAt <= this.#now()) return;
    const json = JSON.stringify(value);
    await this.#redis.run((client) =>
      client.set(key, json, { expiration: { type: "PXAT", value: Math.ceil(expiresAt) } })
    );
  }

  async #getJson<T>(key: string): Promise<T | null> {
    const json = await this.#redis.run((client) => client.get(key));
    return typeof json === "string" ? JSON.parse(json) as T : null;
  }

  /** A record that can be used once: hash `r` (JSON), `u` (used). */
  async #putUsable(key: string, record: unknown, expiresAt: number): Promise<void> {
    if (expiresAt <= this.#now()) return;
    const json = JSON.stringify(record);
    await this.#redis.run((client) =>
      client.multi().hSet(key, { r: json, u: "0" }).pExpireAt(key, Math.ceil(expiresAt)).exec()
    );
  }
}

/**
 * The signing key set in Redis, so every node signs with the same keys and
 * a rotation on one node reaches the others at their next check (and at once
 * when they meet a token with an unknown `kid`). Two nodes rotating at the
 * same moment cannot both win: a write only succeeds on the version it read.
 */
export class RedisKeySetStorage implements KeySetStorage {
  readonly #redis: RedisConnection;
  readonly #key: string;

  /** @param redis the shared connection */
  constructor(redis: RedisConnection) {
    this.#redis = redis;
    this.#key = `${redis.prefix}oauth:keys`;
  }

  /** The Redis key. */
  get name(): string {
    return `Redis key ${this.#key}`;
  }

  async read(): Promise<{ text: string | null; version: string | null }> {
    const [text, version] = await this.#redis.run((client) => client.hmGet(this.#key, ["t", "v"]));
    return typeof text === "string"
      ? { text, version: typeof version === "string" ? version : null }
      : { text: null, version: null };
  }

  async version(): Promise<string | null> {
    const version = await this.#redis.run((client) => client.hGet(this.#key, "v"));
    return typeof version === "string" ? version : null;
  }

  async write(text: string, expected: string | null): Promise<string | false> {
    const version = crypto.randomUUID();
    const result = await this.#redis.run((client) =>
      client.eval(WRITE_KEYS, { keys: [this.#key], arguments: [text, expected ?? "", version] })
    );
    return typeof result === "string" ? result : false;
  }
}
