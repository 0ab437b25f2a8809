/**
 * The signing key set: ES256 keys persisted as a JWK set (private parts
 * included, mode 0600), created on first start and rotated every
 * `rotate_days`. A retired key stays published in the JWKS until every token
 * it signed has expired, then it is dropped from the file.
 *
 * Each JWK carries `kid` (its RFC 7638 thumbprint), `alg`, `use` and `iat`
 * (when it was made, epoch seconds; an extra member, which JWK readers ignore).
 *
 * @module
 */
import {
  calculateJwkThumbprint,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWSHeaderParameters,
} from "jose";
import { dirname, join } from "node:path";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["relay", "oauth"]);

/** Slack after the last token of a retired key expires before the key is dropped (s). */
const RETIRE_SLACK_SECONDS = 300;
/** Least time between two reloads triggered by an unknown `kid` (ms). */
const UNKNOWN_KID_RELOAD_MS = 5_000;

/** A stored key: a private JWK with our members. */
interface StoredJwk extends JWK {
  kid: string;
  iat: number;
}

interface LoadedKey {
  kid: string;
  createdAt: number;
  jwk: StoredJwk;
  publicKey: CryptoKey;
  privateKey: CryptoKey | null;
}

/**
 * Where the key set is kept: the `keys_file` (one node, or a file the
 * operator distributes), or Redis ({@link RedisKeySetStorage}) so that every
 * node signs with the same keys and sees a rotation made by any of them.
 */
export interface KeySetStorage {
  /** Names the place in errors and logs. */
  readonly name: string;
  /** The stored JWK set text (`null` when there is none yet) and its version tag. */
  read(): Promise<{ text: string | null; version: string | null }>;
  /** The current version tag, cheaply (an mtime, a counter); `null` when nothing is stored. */
  version(): Promise<string | null>;
  /**
   * Stores `text` unless someone else stored a version other than `expected`
   * meanwhile; the new version tag, or `false` when another writer won.
   */
  write(text: string, expected: string | null): Promise<string | false>;
}

/** Options for {@link SigningKeys.open}. */
export interface SigningKeysOptions {
  /** The JWK set file (and, with `storage`, the seed for an empty store). */
  file: string;
  /** Keep the set here instead of in `file`. */
  storage?: KeySetStorage;
  /** Days between rotations; 0 never rotates. */
  rotateDays: number;
  /** Access-token lifetime: how long a retired key must stay published (s). */
  accessTokenTtlSeconds: number;
  /** Never create, rotate or write: verify-only nodes. */
  readOnly?: boolean;
  /** How often the file is checked for changes made by another process (ms). */
  reloadIntervalMs?: number;
  /** The clock, epoch milliseconds. */
  now?: () => number;
}

/** The key set of the authorization server. */
export class SigningKeys {
  readonly #options: Required<Omit<SigningKeysOptions, "storage">>;
  readonly #storage: KeySetStorage;
  #keys: LoadedKey[] = [];
  #version: string | null = null;
  #checkedAt = 0;
  #unknownKidReloadAt = 0;
  #busy: Promise<void> | null = null;

  private constructor(options: SigningKeysOptions) {
    const { storage, ...rest } = options;
    this.#options = {
      readOnly: false,
      reloadIntervalMs: 30_000,
      now: Date.now,
      ...rest,
    };
    this.#storage = storage ?? new FileKeySetStorage(options.file, !this.#options.readOnly);
  }

  /**
   * Loads the key set, creating it (or a successor key) when missing or due.
   * A read-only set fails when the file is missing.
   */
  static async open(options: SigningKeysOptions): Promise<SigningKeys> {
    const keys = new SigningKeys(options);
    await keys.#load();
    if (keys.#keys.length === 0 && options.storage && !options.readOnly) {
      // A new shared store starts from this node's key file, if it has one.
      const seed = await new FileKeySetStorage(options.file, false).read().catch(() => null);
      if (seed?.text) await keys.#adopt(seed.text);
    }
    if (!options.readOnly) await keys.#maintain(false);
    if (keys.#keys.length === 0) throw new Error(`no signing keys in ${keys.#storage.name}`);
    return keys;
  }

  /** The key new tokens are signed with; rotates first when due. */
  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    await this.refresh();
    if (!this.#options.readOnly && this.#rotationDue()) {
      await this.#exclusive(() => this.#maintain(false));
    }
    const newest = this.#keys.at(-1);
    if (!newest?.privateKey) throw new Error("no private signing key available");
    return { kid: newest.kid, key: newest.privateKey };
  }

  /** The public JWK set to publish at the JWKS endpoint. */
  publicJwks(): { keys: JWK[] } {
    const now = this.#options.now() / 1000;
    return {
      keys: this.#keys.filter((_, i) => !this.#expired(i, now)).map((key) => publicPart(key.jwk)),
    };
  }

  /** The `kid` of every published key, oldest first. */
  kids(): string[] {
    return this.#keys.map((key) => key.kid);
  }

  /**
   * A jose key resolver: the public key named by the JWS `kid`. An unknown
   * `kid` re-reads the file (another process may have rotated), at most
   * every few seconds. Only ES256 keys are ever returned.
   */
  readonly getKey = async (header: JWSHeaderParameters): Promise<CryptoKey> => {
    if (header.alg !== "ES256") throw new joseErrors.JOSEAlgNotAllowed("unexpected JWS algorithm");
    await this.refresh();
    let found = this.#find(header.kid);
    if (!found && this.#options.now() - this.#unknownKidReloadAt > UNKNOWN_KID_RELOAD_MS) {
      this.#unknownKidReloadAt = this.#options.now();
      await this.#exclusive(() => this.#load());
      found = this.#find(header.kid);
    }
    if (!found) throw new joseErrors.JWKSNoMatchingKey();
    return found.publicKey;
  };

  /** Makes a new signing key now (old ones stay published until their tokens expire). */
  async rotate(): Promise<string> {
    if (this.#options.readOnly) throw new Error("the key set is read-only");
    await this.#exclusive(() => this.#maintain(true));
    return this.#keys.at(-1)!.kid;
  }

  #find(kid: string | undefined): LoadedKey | undefined {
    const now = this.#options.now() / 1000;
    const index = this.#keys.findIndex((key) => key.kid === kid);
    return index >= 0 && !this.#expired(index, now) ? this.#keys[index] : undefined;
  }

  /** Whether key `index` has been retired long enough that no token it signed is valid. */
  #expired(index: number, nowSeconds: number): boolean {
    const successor = this.#keys[index + 1];
    if (!successor) return false;
    return successor.createdAt + this.#options.accessTokenTtlSeconds + RETIRE_SLACK_SECONDS <=
      nowSeconds;
  }

  #rotationDue(): boolean {
    const newest = this.#keys.at(-1);
    if (!newest) return true;
    if (this.#options.rotateDays === 0) return false;
    return newest.createdAt + this.#options.rotateDays * 86400 <= this.#options.now() / 1000;
  }

  async #exclusive(work: () => Promise<void>): Promise<void> {
    while (this.#busy) await this.#busy.catch(() => {});
    const running = work().finally(() => {
      this.#busy = null;
    });
    this.#busy = running;
    await running;
  }

  /**
   * Re-reads the set when another process (node) changed it; cheap between
   * checks (`reloadIntervalMs`). Never rejects: the keys held stay when the
   * file or the store cannot be read.
   */
  async refresh(): Promise<void> {
    const now = this.#options.now();
    if (now - this.#checkedAt < this.#options.reloadIntervalMs) return;
    this.#checkedAt = now;
    try {
      const version = await this.#storage.version();
      if (version !== null && version !== this.#version) {
        await this.#exclusive(() => this.#load());
      } else if (version === null && this.#keys.length > 0 && !this.#options.readOnly) {
        // The store lost the set (Redis restarted empty): put ours back.
        log.warning("OAuth key set missing from {where}; storing this node's keys again", {
          where: this.#storage.name,
        });
        this.#version = null;
        await this.#exclusive(() => this.#save());
      }
    } catch {
      // Keep the keys we have while the file or the store is unavailable.
    }
  }

  async #load(): Promise<void> {
    const { text, version } = await this.#storage.read();
    if (text === null) {
      if (this.#options.readOnly) throw new Error(`no OAuth key set in ${this.#storage.name}`);
      this.#keys = [];
      this.#version = null;
      return;
    }
    this.#keys = await parseKeySet(text, this.#storage.name);
    this.#version = version;
  }

  /** Takes `text` as the key set and stores it (seeding a new shared store). */
  async #adopt(text: string): Promise<void> {
    this.#keys = await parseKeySet(text, this.#storage.name);
    await this.#save();
  }

  /** Adds a key when due (or forced), drops expired ones, and saves when anything changed. */
  async #maintain(force: boolean): Promise<void> {
    const nowSeconds = Math.floor(this.#options.now() / 1000);
    let changed = false;
    if (force || this.#rotationDue()) {
      this.#keys.push(await newKey(nowSeconds));
      changed = true;
    }
    const kept = this.#keys.filter((_, i) => !this.#expired(i, nowSeconds));
    if (kept.length !== this.#keys.length) changed = true;
    this.#keys = kept;
    if (changed) await this.#save();
  }

  /** Stores the set; when another node stored one first, takes theirs instead. */
  async #save(): Promise<void> {
    const body = JSON.stringify({ keys: this.#keys.map((key) => key.jwk) }, null, 2) + "\n";
    const version = await this.#storage.write(body, this.#version);
    if (version === false) {
      log.info("OAuth key set changed by another node meanwhile; using theirs");
      await this.#load();
      return;
    }
    this.#version = version;
  }
}

/** Parses a stored JWK set; errors name `where`. */
async function parseKeySet(text: string, where: string): Promise<LoadedKey[]> {
  let parsed: { keys?: unknown };
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`the OAuth key set ${where} is not valid JSON`);
  }
  if (!Array.isArray(parsed.keys)) {
    throw new Error(`the OAuth key set ${where} has no "keys" array`);
  }
  const loaded: LoadedKey[] = [];
  for (const raw of parsed.keys as StoredJwk[]) {
    if (raw?.kty !== "EC" || raw.crv !== "P-256" || typeof raw.kid !== "string") {
      throw new Error(`the OAuth key set ${where} holds a key that is not ES256`);
    }
    const publicKey = await importJWK(publicPart(raw), "ES256") as CryptoKey;
    const privateKey = raw.d ? await importJWK(raw, "ES256") as CryptoKey : null;
    loaded.push({
      kid: raw.kid,
      createdAt: typeof raw.iat === "number" ? raw.iat : 0,
      jwk: raw,
      publicKey,
      privateKey,
    });
  }
  return loaded.sort((a, b) => a.createdAt - b.createdAt);
}

/** The key set in a file (mode 0600), written atomically; the version is its mtime. */
export class FileKeySetStorage implements KeySetStorage {
  readonly #file: string;
  readonly #fixMode: boolean;

  /**
   * @param file the JWK set file
   * @param fixMode tighten a file readable by others to 0600 (writers only)
   */
  constructor(file: string, fixMode: boolean) {
    this.#file = file;
    this.#fixMode = fixMode;
  }

  /** The file name. */
  get name(): string {
    return this.#file;
  }

  async read(): Promise<{ text: string | null; version: string | null }> {
    const file = this.#file;
    try {
      const info = await Deno.stat(file);
      if (this.#fixMode && info.mode !== null && (info.mode & 0o077) !== 0) {
        log.warning("OAuth key set {file} was readable by others; set to mode 0600", { file });
        await Deno.chmod(file, 0o600);
      }
      return { text: await Deno.readTextFile(file), version: mtimeOf(info) };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { text: null, version: null };
      throw new Error(`cannot read the OAuth key set ${file}: ${describe(error)}`);
    }
  }

  async version(): Promise<string | null> {
    return mtimeOf(await Deno.stat(this.#file));
  }

  async write(text: string): Promise<string> {
    const file = this.#file;
    await Deno.mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const temp = join(dirname(file), `.${crypto.randomUUID()}.tmp`);
    try {
      const handle = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      try {
        await handle.write(new TextEncoder().encode(text));
        await handle.sync();
      } finally {
        handle.close();
      }
      await Deno.rename(temp, file);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw new Error(`cannot write the OAuth key set ${file}: ${describe(error)}`);
    }
    return mtimeOf(await Deno.stat(file));
  }
}

function mtimeOf(info: Deno.FileInfo): string {
  return String(info.mtime?.getTime() ?? 0);
}

async function newKey(createdAt: number): Promise<LoadedKey> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const exported = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(exported);
  const jwk: StoredJwk = { ...exported, kid, alg: "ES256", use: "sig", iat: createdAt };
  return { kid, createdAt, jwk, publicKey, privateKey };
}

/** The public members of a stored key. */
function publicPart(jwk: StoredJwk): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: jwk.kid, alg: "ES256", use: "sig" };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
