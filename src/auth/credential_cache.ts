/**
 * A cache of recently verified credentials, as Dovecot's auth cache keeps,
 * so a client that logs in again and again does not pay for argon2 each time.
 *
 * The key is HMAC-SHA256 over `user NUL password` with a random key made per
 * cache, so neither the password nor an offline-guessable hash of it is kept.
 * An entry remembers the stored hash it was verified against and only counts
 * while the user's current stored hash is the same string: editing or
 * removing the user's line invalidates it. Only successes are cached.
 *
 * @module
 */
import { createHmac, randomBytes } from "node:crypto";

/** Options for {@link CredentialCache}. */
export interface CredentialCacheOptions {
  /** How long an entry counts, in milliseconds; 0 disables the cache. */
  ttlMs: number;
  /** Most entries kept; the least recently used go first. */
  maxEntries: number;
  /** Clock in milliseconds (tests); default `Date.now`. */
  now?: () => number;
}

interface Entry {
  storedHash: string;
  expiresAt: number;
}

/** The cache; see the module documentation. */
export class CredentialCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #key: Uint8Array = new Uint8Array(randomBytes(32));
  // A Map iterates in insertion order: re-inserting on a hit makes it an LRU list.
  readonly #entries = new Map<string, Entry>();

  /** Creates an empty cache with its own random key. */
  constructor(options: CredentialCacheOptions) {
    if (!(options.ttlMs >= 0)) throw new RangeError("cache TTL must be >= 0");
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError("cache size must be a positive integer");
    }
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries;
    this.#now = options.now ?? Date.now;
  }

  /** Whether the cache is on (a TTL above 0). */
  get enabled(): boolean {
    return this.#ttlMs > 0;
  }

  /** Entries held (some may have expired but not been swept yet). */
  get size(): number {
    return this.#entries.size;
  }

  #keyFor(user: string, password: string): string {
    return createHmac("sha256", this.#key).update(user).update("\0").update(password)
      .digest("base64");
  }

  /**
   * Whether `user` recently verified with exactly this `password` against
   * exactly `currentStoredHash`. A stale or expired entry is dropped.
   */
  has(user: string, password: string, currentStoredHash: string): boolean {
    if (!this.enabled) return false;
    const key = this.#keyFor(user, password);
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#entries.delete(key);
    if (entry.expiresAt <= this.#now() || entry.storedHash !== currentStoredHash) return false;
    this.#entries.set(key, entry);
    return true;
  }

  /** Remembers a successful verification. Call only after the password verified. */
  remember(user: string, password: string, storedHash: string): void {
    if (!this.enabled) return;
    const key = this.#keyFor(user, password);
    this.#entries.delete(key);
    this.#entries.set(key, { storedHash, expiresAt: this.#now() + this.#ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** Forgets every entry (after a bulk change, or on shutdown). */
  clear(): void {
    this.#entries.clear();
  }
}
