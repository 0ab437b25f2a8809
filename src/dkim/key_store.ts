/**
 * DKIM keys on disk, per signing domain (compare maddy's and mox's key
 * files):
 *
 * ```
 * config/dkim/<domain>/keys.json        the domain's keys and their schedule
 * config/dkim/<domain>/<selector>.pem   each private key (PKCS#8 PEM, mode 0600)
 * ```
 *
 * A key's life: *pending* (published, not yet signing: DNS needs time to
 * spread), *active* (signing), *retired* (no longer signing, still published
 * so that messages signed with it — still queued, or read later — verify),
 * *expired* (the DNS record may be removed). `generate` makes keys active at
 * once; `rotate` makes new ones pending for `wait` and retires the old ones
 * when the new ones take over, keeping them published for `overlap` after.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { normalizeDomain, writeFileDurably } from "../mail/mod.ts";

/** Signature algorithms (RFC 6376 rsa-sha256, RFC 8463 ed25519-sha256). */
export type DkimAlgorithm = "ed25519" | "rsa";

/** Where a key is in its life at a given time. */
export type DkimKeyState = "pending" | "active" | "retired" | "expired";

/** One key of a domain, as `keys.json` records it. */
export interface DkimKeyInfo {
  selector: string;
  algorithm: DkimAlgorithm;
  /** RSA modulus length. */
  bits?: number;
  /** ISO time of creation. */
  created: string;
  /** ISO time from which it signs. */
  signFrom: string;
  /** ISO time from which it no longer signs (set by a rotation). */
  signUntil?: string;
  /** ISO time after which its DNS record may be removed. */
  publishUntil?: string;
  /** The `p=` value: base64 public key (SPKI for RSA, the raw 32 bytes for Ed25519). */
  publicKey: string;
}

/** A key with its domain. */
export interface DomainKey extends DkimKeyInfo {
  domain: string;
}

/** Options for {@link generateKeys}. */
export interface GenerateOptions {
  /** Selector (with both algorithms, `-ed25519` and `-rsa` are appended). Default: the date. */
  selector?: string;
  /** One algorithm; both (dual signatures) when absent. */
  algorithm?: DkimAlgorithm;
  /** RSA modulus length (default 2048). */
  bits?: number;
  /** The clock. */
  now?: Date;
}

/** Options for {@link rotateKeys}. */
export interface RotateOptions {
  /** Hours the new keys are published before they sign (default 48). */
  waitHours?: number;
  /** Days the old keys stay published after they stop signing (default 7). */
  overlapDays?: number;
  /** RSA modulus length of the new RSA key (default: the old key's). */
  bits?: number;
  /** The clock. */
  now?: Date;
}

/** A key store error meant for the operator (bad domain, selector taken...). */
export class DkimKeyError extends Error {
  override name = "DkimKeyError";
}

const HOUR_MS = 60 * 60 * 1000;
const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const encoder = new TextEncoder();
const generate = promisify(generateKeyPair);

/** The domain's state of a key at `now`. */
export function keyState(key: DkimKeyInfo, now: Date): DkimKeyState {
  const t = now.getTime();
  if (key.publishUntil && t >= Date.parse(key.publishUntil)) return "expired";
  if (key.signUntil && t >= Date.parse(key.signUntil)) return "retired";
  return t >= Date.parse(key.signFrom) ? "active" : "pending";
}

/** Checks and canonicalizes a signing domain. */
export function checkDomain(domain: string): string {
  const ascii = normalizeDomain(domain);
  if (ascii === null) throw new DkimKeyError(`not a domain name: ${JSON.stringify(domain)}`);
  return ascii;
}

function checkSelector(selector: string): string {
  const lower = selector.toLowerCase();
  if (!SELECTOR.test(lower)) {
    throw new DkimKeyError(
      `not a selector: ${JSON.stringify(selector)} (letters, digits and inner hyphens)`,
    );
  }
  return lower;
}

/** The keys under `dir` (`config/dkim`): every domain folder's `keys.json`. */
export class DkimKeyStore {
  /** The folder holding one folder per domain. */
  readonly dir: string;

  /** @param dir the keys folder (`[dkim] dir`) */
  constructor(dir: string) {
    this.dir = dir;
  }

  /** The domains that have a `keys.json`, sorted. */
  async domains(): Promise<string[]> {
    const found: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        if (!entry.isDirectory) continue;
        try {
          await Deno.stat(join(this.dir, entry.name, "keys.json"));
          found.push(entry.name);
        } catch { /* not a key folder */ }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return found.sort();
  }

  /** A domain's keys (none when it has no folder). */
  async keys(domain: string): Promise<DkimKeyInfo[]> {
    const path = join(this.dir, checkDomain(domain), "keys.json");
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    let parsed: { keys?: DkimKeyInfo[] };
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new DkimKeyError(`${path}: not valid JSON (${(error as Error).message})`);
    }
    if (!Array.isArray(parsed.keys)) throw new DkimKeyError(`${path}: no "keys" list`);
    return parsed.keys;
  }

  /** Every domain's keys. */
  async all(): Promise<DomainKey[]> {
    const out: DomainKey[] = [];
    for (const domain of await this.domains()) {
      for (const key of await this.keys(domain)) out.push({ domain, ...key });
    }
    return out;
  }

  /** Reads a key's private half. */
  async privateKey(domain: string, selector: string): Promise<KeyObject> {
    const pem = await Deno.readTextFile(this.#pemPath(domain, selector));
    return createPrivateKey(pem);
  }

  #pemPath(domain: string, selector: string): string {
    return join(this.dir, checkDomain(domain), `${checkSelector(selector)}.pem`);
  }

  async #save(domain: string, keys: DkimKeyInfo[]): Promise<void> {
    const text = JSON.stringify({ keys }, null, 2) + "\n";
    await writeFileDurably(join(this.dir, domain, "keys.json"), encoder.encode(text));
  }

  /** Makes a key pair, writes its private half (0600) and returns its record. */
  async #create(
    domain: string,
    selector: string,
    algorithm: DkimAlgorithm,
    bits: number,
    created: Date,
    signFrom: Date,
  ): Promise<DkimKeyInfo> {
    await Deno.mkdir(join(this.dir, domain), { recursive: true, mode: 0o700 });
    const { privateKey } = algorithm === "rsa"
      ? await generate("rsa", { modulusLength: bits })
      : await generate("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    await Deno.writeTextFile(this.#pemPath(domain, selector), pem, {
      createNew: true,
      mode: 0o600,
    });
    return {
      selector,
      algorithm,
      ...(algorithm === "rsa" ? { bits } : {}),
      created: created.toISOString(),
      signFrom: signFrom.toISOString(),
      publicKey: publicKeyValue(privateKey),
    };
  }

  /**
   * New keys for `domain`, signing at once: Ed25519 and RSA (dual
   * signatures) unless one algorithm is asked for. Refuses a selector the
   * domain already has, and an algorithm it already signs with (that is a
   * rotation).
   */
  async generate(domain: string, options: GenerateOptions = {}): Promise<DomainKey[]> {
    const ascii = checkDomain(domain);
    const now = options.now ?? new Date();
    const keys = await this.keys(ascii);
    const algorithms: DkimAlgorithm[] = options.algorithm
      ? [options.algorithm]
      : ["ed25519", "rsa"];
    for (const algorithm of algorithms) {
      const current = keys.find((k) => k.algorithm === algorithm && isCurrent(k, now));
      if (current) {
        throw new DkimKeyError(
          `${ascii} already has a ${algorithm} key (selector ${current.selector}); ` +
            `use relay dkim rotate --domain ${ascii}`,
        );
      }
    }
    const base = options.selector !== undefined
      ? checkSelector(options.selector)
      : dateSelector(now);
    const added: DkimKeyInfo[] = [];
    for (const algorithm of algorithms) {
      const selector = algorithms.length === 1 ? base : `${base}-${algorithm}`;
      if (keys.some((k) => k.selector === selector)) {
        throw new DkimKeyError(`${ascii} already has a key with selector ${selector}`);
      }
      added.push(await this.#create(ascii, selector, algorithm, options.bits ?? 2048, now, now));
    }
    await this.#save(ascii, [...keys, ...added]);
    return added.map((k) => ({ domain: ascii, ...k }));
  }

  /**
   * Replaces the domain's signing keys by new ones of the same algorithms
   * under new selectors: the new keys sign after `waitHours` (publish their
   * records first), the old ones stop then and stay published `overlapDays`
   * longer. Returns the new keys.
   */
  async rotate(domain: string, options: RotateOptions = {}): Promise<DomainKey[]> {
    const ascii = checkDomain(domain);
    const now = options.now ?? new Date();
    const keys = await this.keys(ascii);
    const current = keys.filter((k) => isCurrent(k, now));
    if (current.length === 0) {
      throw new DkimKeyError(`${ascii} has no key to rotate; use relay dkim generate`);
    }
    const takeover = new Date(now.getTime() + (options.waitHours ?? 48) * HOUR_MS);
    const publishUntil = new Date(takeover.getTime() + (options.overlapDays ?? 7) * 24 * HOUR_MS);
    const base = freeBase(dateSelector(now), keys, current);
    const added: DkimKeyInfo[] = [];
    for (const old of current) {
      const selector = current.length === 1 ? base : `${base}-${old.algorithm}`;
      added.push(
        await this.#create(
          ascii,
          selector,
          old.algorithm,
          options.bits ?? old.bits ?? 2048,
          now,
          takeover,
        ),
      );
      old.signUntil = takeover.toISOString();
      old.publishUntil = publishUntil.toISOString();
    }
    await this.#save(ascii, [...keys, ...added]);
    return added.map((k) => ({ domain: ascii, ...k }));
  }
}

/** A key that signs now or will, and no rotation has replaced yet. */
function isCurrent(key: DkimKeyInfo, now: Date): boolean {
  return key.signUntil === undefined && keyState(key, now) !== "expired";
}

/** `YYYYMMDD` of `now` (UTC): the default selector. */
function dateSelector(now: Date): string {
  return now.toISOString().slice(0, 10).replaceAll("-", "");
}

/** `base`, or `base-2`, `base-3`... so that no selector the rotation makes is taken. */
function freeBase(base: string, keys: DkimKeyInfo[], current: DkimKeyInfo[]): string {
  const taken = (candidate: string) =>
    current.some((old) =>
      keys.some((k) =>
        k.selector === (current.length === 1 ? candidate : `${candidate}-${old.algorithm}`)
      )
    );
  let candidate = base;
  for (let n = 2; taken(candidate); n++) candidate = `${base}-${n}`;
  return candidate;
}

/**
 * The `p=` value of a key: for RSA the SubjectPublicKeyInfo DER in base64;
 * for Ed25519 (RFC 8463) the raw 32-byte public key, which is the last 32
 * bytes of its SPKI DER.
 */
export function publicKeyValue(key: KeyObject): string {
  const spki = createPublicKey(key).export({ type: "spki", format: "der" }) as Buffer;
  const bytes = key.asymmetricKeyType === "ed25519" ? spki.subarray(spki.length - 32) : spki;
  return Buffer.from(bytes).toString("base64");
}
