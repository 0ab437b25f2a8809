/**
 * The signing keys the relay holds in memory: read from the key store at
 * start (and on SIGHUP), chosen per message by the clock, so a rotation's
 * take-over happens without a reload.
 *
 * @module
 */
import { type DkimKeyInfo, DkimKeyStore, keyState } from "./key_store.ts";
import { loadMailauth } from "./mailauth.ts";
import type { SigningKey } from "./signer.ts";

interface LoadedKey {
  info: DkimKeyInfo;
  key: SigningKey;
}

/** Per-domain signing keys. */
export class DkimKeyring {
  readonly #byDomain: Map<string, LoadedKey[]>;

  private constructor(byDomain: Map<string, LoadedKey[]>) {
    this.#byDomain = byDomain;
  }

  /** An empty keyring: nothing is signed. */
  static empty(): DkimKeyring {
    return new DkimKeyring(new Map());
  }

  /**
   * Reads every key under `dir` that is not expired. Rejects (naming the
   * file) when a key cannot be read: better to refuse to start than to
   * relay unsigned mail the operator believes signed.
   */
  static async load(dir: string): Promise<DkimKeyring> {
    const store = new DkimKeyStore(dir);
    const now = new Date();
    const byDomain = new Map<string, LoadedKey[]>();
    let all;
    try {
      all = await store.all();
    } catch (error) {
      throw new Error(`dkim.dir: ${dir}: ${error instanceof Error ? error.message : error}`);
    }
    for (const info of all) {
      const state = keyState(info, now);
      if (state === "expired" || state === "retired") continue;
      let privateKey;
      try {
        privateKey = await store.privateKey(info.domain, info.selector);
      } catch (error) {
        throw new Error(
          `dkim.dir: cannot read the key ${info.selector} of ${info.domain}: ${
            error instanceof Error ? error.message : error
          }`,
        );
      }
      const list = byDomain.get(info.domain) ?? [];
      list.push({
        info,
        key: {
          domain: info.domain,
          selector: info.selector,
          algorithm: info.algorithm,
          privateKey,
        },
      });
      byDomain.set(info.domain, list);
    }
    // Signing needs mailauth; a relay without keys never loads it.
    if (byDomain.size > 0) await loadMailauth();
    return new DkimKeyring(byDomain);
  }

  /** Domains with at least one key loaded. */
  get domains(): string[] {
    return [...this.#byDomain.keys()];
  }

  /** The keys that sign for `domain` (lower-case ASCII) at `now`; none: unsigned. */
  signingKeys(domain: string, now: Date): SigningKey[] {
    return (this.#byDomain.get(domain) ?? [])
      .filter((k) => keyState(k.info, now) === "active")
      .map((k) => k.key);
  }
}
