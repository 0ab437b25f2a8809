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

/** Options for {@link SigningKeys.open}. */
export interface SigningKeysOptions {
  /** The JWK set file. */
  file: string;
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
  readonly #options: Required<SigningKeysOptions>;
  #keys: LoadedKey[] = [];
  #mtime: number | null = null;
  #checkedAt = 0;
  #unknownKidReloadAt = 0;
  #busy: Promise<void> | null = null;

  private constructor(options: SigningKeysOptions) {
    this.#options = {
      readOnly: false,
      reloadIntervalMs: 30_000,
      now: Date.now,
      ...options,
    };
  }

  /**
   * Loads the key set, creating it (or a successor key) when missing or due.
   * A read-only set fails when the file is missing.
   */
  static async open(options: SigningKeysOptions): Promise<SigningKeys> {
    const keys = new SigningKeys(options);
    await keys.#load();
    if (!options.readOnly) await keys.#maintain(false);
    if (keys.#keys.length === 0) throw new Error(`no signing keys in ${options.file}`);
    return keys;
  }

  /** The key new tokens are signed with; rotates first when due. */
  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    await this.#refresh();
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
    await this.#refresh();
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

  /** Re-reads the file when another process changed it; cheap between intervals. */
  async #refresh(): Promise<void> {
    const now = this.#options.now();
    if (now - this.#checkedAt < this.#options.reloadIntervalMs) return;
    this.#checkedAt = now;
    try {
      const info = await Deno.stat(this.#options.file);
      if (info.mtime?.getTime() !== this.#mtime) await this.#exclusive(() => this.#load());
    } catch {
      // Keep the keys we have when the file disappears.
    }
  }

  async #load(): Promise<void> {
    let text: string;
    let mtime: number | null = null;
    try {
      const info = await Deno.stat(this.#options.file);
      mtime = info.mtime?.getTime() ?? null;
      if (!this.#options.readOnly && info.mode !== null && (info.mode & 0o077) !== 0) {
        log.warning("OAuth key set {file} was readable by others; set to mode 0600", {
          file: this.#options.file,
        });
        await Deno.chmod(this.#options.file, 0o600);
      }
      text = await Deno.readTextFile(this.#options.file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && !this.#options.readOnly) {
        this.#keys = [];
        return;
      }
      throw new Error(`cannot read the OAuth key set ${this.#options.file}: ${describe(error)}`);
    }
    let parsed: { keys?: unknown };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`the OAuth key set ${this.#options.file} is not valid JSON`);
    }
    if (!Array.isArray(parsed.keys)) {
      throw new Error(`the OAuth key set ${this.#options.file} has no "keys" array`);
    }
    const loaded: LoadedKey[] = [];
    for (const raw of parsed.keys as StoredJwk[]) {
      if (raw?.kty !== "EC" || raw.crv !== "P-256" || typeof raw.kid !== "string") {
        throw new Error(`the OAuth key set ${this.#options.file} holds a key that is not ES256`);
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
    loaded.sort((a, b) => a.createdAt - b.createdAt);
    this.#keys = loaded;
    this.#mtime = mtime;
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

  async #save(): Promise<void> {
    const file = this.#options.file;
    await Deno.mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const temp = join(dirname(file), `.${crypto.randomUUID()}.tmp`);
    const body = JSON.stringify({ keys: this.#keys.map((key) => key.jwk) }, null, 2) + "\n";
    try {
      const handle = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      try {
        await handle.write(new TextEncoder().encode(body));
        await handle.sync();
      } finally {
        handle.close();
      }
      await Deno.rename(temp, file);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw new Error(`cannot write the OAuth key set ${file}: ${describe(error)}`);
    }
    this.#mtime = (await Deno.stat(file)).mtime?.getTime() ?? null;
  }
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
