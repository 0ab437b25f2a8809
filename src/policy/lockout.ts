/**
 * Login lockouts that an attacker cannot turn against an account's owner
 * (after Dovecot's auth penalty and Microsoft's smart lockout). Failures are
 * counted in several scopes, each with its own consequence:
 *
 * | scope                | counts                                         | consequence                                   |
 * | -------------------- | ---------------------------------------------- | --------------------------------------------- |
 * | `pair`               | failures of one account from one address       | that address is refused for that account      |
 * | `address`            | distinct accounts failing from one address     | the address is refused for every account      |
 * | `account-unfamiliar` | failures of one account from any address       | the account is "under attack": only familiar addresses may try it |
 * | `token`              | bearer-token failures from one address         | that address is refused bearer tokens         |
 * | `domain-slow`        | failures for all accounts of a domain          | attempts from unfamiliar addresses are delayed, never refused |
 *
 * A *familiar* address is one whose network (/24 for IPv4, /64 for IPv6)
 * authenticated successfully as the account within `familiarDays`. The owner
 * therefore keeps logging in from home or the office while a guesser
 * elsewhere is refused; a spray of unknown users slows the domain down but
 * never locks its users out. Addresses in `trusted` are exempt from the
 * address-wide scopes (`address`, `token`), not from `pair`.
 *
 * A check is a reservation: {@link Lockout.begin} counts the attempt before
 * the credentials are verified, and {@link LoginTicket.finish} gives it back
 * unless it failed, so parallel connections cannot get more attempts through
 * than the limit. Everything lives in a {@link StateStore} (increment with a
 * negative step, get, set, ttl, delete), so all nodes sharing it agree.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { parseEmail } from "../mail/mod.ts";
import { SlidingWindow, type StateStore } from "../state/mod.ts";
import type { RateLimitConfig } from "../config/limits_schema.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The scope a lockout decision concerns (the audit events and metrics name it). */
export type LockoutScope = "pair" | "address" | "account-unfamiliar" | "token" | "domain-slow";

/** What is being tried: a password (or login-page password) or a bearer token. */
export type CredentialKind = "password" | "token";

/** An attempt to log in. */
export interface LoginAttempt {
  /** The client address. */
  ip: string;
  /** The account as typed (any case); "" when unknown (a bearer token without a user). */
  account: string;
  kind: CredentialKind;
  /**
   * A keyed fingerprint of the password tried (`CredentialFingerprinter`):
   * a client retrying the same stale password makes one guess, not many, so
   * a repeat within the hour counts as "neutral". Never the password itself.
   */
  credentialFingerprint?: string;
}

/** A refusal: the scope and when to come back. */
export interface LockoutRefusal {
  allowed: false;
  scope: LockoutScope;
  retryAfterSeconds: number;
}

/** How an attempt ended, for {@link LoginTicket.finish}. */
export type LoginOutcome =
  /** The credentials were right: the reservation is given back and the network becomes familiar. */
  | "success"
  /** Wrong password, unknown user, bad token: the reservation stays as a failure. */
  | "failure"
  /** Not a guess (backend down, a repeated stale password): given back, not counted. */
  | "neutral";

/** A block set by a failure, for the audit trail. */
export interface LockoutBlock {
  scope: LockoutScope;
  seconds: number;
}

/** An admitted attempt holding its reservation until {@link finish}. */
export interface LoginTicket {
  allowed: true;
  /** Wait this long before verifying (the domain is being sprayed); 0 usually. */
  delayMs: number;
  /** `domain-slow` when {@link delayMs} > 0. */
  scope?: LockoutScope;
  /**
   * Settles the reservation. Resolves the blocks this failure set (empty
   * otherwise) and the refusal the next attempt would get, if any.
   */
  finish(outcome: LoginOutcome): Promise<{ blocks: LockoutBlock[]; next: LockoutRefusal | null }>;
}

/** Options for {@link Lockout}; limits of 0 are off. */
export interface LockoutOptions {
  store: StateStore;
  /** Failures per (address, account) pair in any minute. Default 5. */
  perMinute?: number;
  /** Failures per (address, account) pair in any hour. Default 20. */
  perHour?: number;
  /** Seconds a pair, address or token block lasts (longer if the hourly count needs it). Default 300. */
  blockSeconds?: number;
  /** Distinct accounts failing from one address in any hour before the address is blocked. Default 10. */
  accountsPerAddressPerHour?: number;
  /** Failures of one account from all addresses in any hour that put it under attack. Default 10. */
  accountPerHour?: number;
  /** Seconds an account stays under attack after the last failure that kept it there. Default 900. */
  attackSeconds?: number;
  /** Days a network stays familiar after a successful login. Default 30. */
  familiarDays?: number;
  /** Bearer-token failures per address in any minute. Default 5. */
  tokenPerMinute?: number;
  /** Bearer-token failures per address in any hour. Default 20. */
  tokenPerHour?: number;
  /** Failures for all accounts of a domain in any minute before attempts are delayed. Default 60. */
  domainPerMinute?: number;
  /** Failures for all accounts of a domain in any hour before attempts are delayed. Default 600. */
  domainPerHour?: number;
  /** The delay, ms. Default 2000. */
  domainDelayMs?: number;
  /** Addresses exempt from address-wide blocks (`limits.trusted_networks`). */
  trusted?: (ip: string) => boolean;
  /** Clock in milliseconds (tests); default `Date.now`. */
  now?: () => number;
}

/** What `relay limits show` reports for an address or account. */
export interface LockoutStatus {
  /** The address or account asked about, normalized. */
  target: string;
  /** Active blocks, longest first. */
  blocks: {
    scope: LockoutScope;
    /** For a `pair` block: the other side (the account of an address, or the reverse). */
    with?: string;
    retryAfterSeconds: number;
  }[];
}

/** Maps `[rate_limit]` and `limits.trusted_networks` to {@link LockoutOptions} (no store). */
export function lockoutOptions(
  config: RateLimitConfig,
  trusted?: (ip: string) => boolean,
): Omit<LockoutOptions, "store" | "now"> {
  const on = (n: number) => config.enabled ? n : 0;
  return {
    perMinute: on(config.per_minute),
    perHour: on(config.per_hour),
    blockSeconds: config.block_seconds,
    accountsPerAddressPerHour: on(config.accounts_per_address_per_hour),
    accountPerHour: on(config.account_failures_per_hour),
    attackSeconds: config.account_attack_seconds,
    familiarDays: config.familiar_days,
    tokenPerMinute: on(config.token_per_minute),
    tokenPerHour: on(config.token_per_hour),
    domainPerMinute: on(config.per_domain_per_minute),
    domainPerHour: on(config.per_domain_per_hour),
    domainDelayMs: config.domain_delay_ms,
    trusted,
  };
}

interface Window {
  window: SlidingWindow;
  limit: number;
  name: string;
}

/** Most entries kept in a block index (what `show` lists). */
const INDEX_MAX = 100;

/** The lockout model; see the module documentation. */
export class Lockout {
  readonly #store: StateStore;
  readonly #now: () => number;
  readonly #blockMs: number;
  readonly #pair: Window[];
  readonly #token: Window[];
  readonly #hour: SlidingWindow;
  readonly #minute: SlidingWindow;
  readonly #accountsPerAddress: number;
  readonly #accountPerHour: number;
  readonly #attackMs: number;
  readonly #familiarMs: number;
  readonly #domain: Window[];
  readonly #domainDelayMs: number;
  readonly #trusted: (ip: string) => boolean;

  /** Creates the model over `options.store`. */
  constructor(options: LockoutOptions) {
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
    const limit = (value: number | undefined, fallback: number): number => {
      const n = value ?? fallback;
      if (!Number.isInteger(n) || n < 0) {
        throw new RangeError("limits must be non-negative integers");
      }
      return n;
    };
    const blockSeconds = options.blockSeconds ?? 300;
    if (!(blockSeconds > 0)) throw new RangeError("blockSeconds must be positive");
    this.#blockMs = blockSeconds * 1000;
    this.#minute = new SlidingWindow(this.#store, MINUTE);
    this.#hour = new SlidingWindow(this.#store, HOUR);
    const windows = (perMinute: number, perHour: number): Window[] =>
      [
        { window: this.#minute, limit: perMinute, name: "m" },
        { window: this.#hour, limit: perHour, name: "h" },
      ].filter((w) => w.limit > 0);
    this.#pair = windows(limit(options.perMinute, 5), limit(options.perHour, 20));
    this.#token = windows(limit(options.tokenPerMinute, 5), limit(options.tokenPerHour, 20));
    this.#accountsPerAddress = limit(options.accountsPerAddressPerHour, 10);
    this.#accountPerHour = limit(options.accountPerHour, 10);
    this.#attackMs = (options.attackSeconds ?? 900) * 1000;
    this.#familiarMs = (options.familiarDays ?? 30) * DAY;
    this.#domain = windows(limit(options.domainPerMinute, 60), limit(options.domainPerHour, 600));
    this.#domainDelayMs = options.domainDelayMs ?? 2000;
    this.#trusted = options.trusted ?? (() => false);
  }

  /**
   * Whether the address may start an exchange at all (before the account is
   * known): refused only by an address-wide block.
   */
  async admitAddress(ip: string): Promise<LockoutRefusal | null> {
    if (ip === "" || this.#trusted(ip)) return null;
    return await this.#blocked([["address", blockKey("address", key(ip))]]);
  }

  /**
   * Checks an attempt and reserves it; verify the credentials only when it
   * is allowed, then call {@link LoginTicket.finish} exactly once.
   */
  async begin(attempt: LoginAttempt): Promise<LoginTicket | LockoutRefusal> {
    const now = this.#now();
    const ip = key(attempt.ip);
    const trusted = attempt.ip === "" || this.#trusted(attempt.ip);
    if (attempt.kind === "token") {
      if (!trusted) {
        const refused = await this.#blocked([
          ["address", blockKey("address", ip)],
          ["token", blockKey("token", ip)],
        ]);
        if (refused) return refused;
        const reserved = await this.#reserve(this.#token, `lock:token:${ip}`);
        if (reserved.wait) {
          return { allowed: false, scope: "token", retryAfterSeconds: reserved.wait };
        }
        return this.#ticket(attempt, reserved.at, 0, trusted);
      }
      return this.#ticket(attempt, now, 0, trusted);
    }
    const account = accountKey(attempt.account);
    const pair = `${ip}|${account}`;
    const checks: [LockoutScope, string][] = [["pair", blockKey("pair", pair)]];
    if (!trusted) checks.push(["address", blockKey("address", ip)]);
    const refused = await this.#blocked(checks);
    if (refused) return refused;
    const [familiar, attacked] = await Promise.all([
      this.#familiar(account, attempt.ip),
      this.#store.ttl(`lock:attack:${account}`),
    ]);
    if (attacked !== null && !familiar) {
      return { allowed: false, scope: "account-unfamiliar", retryAfterSeconds: seconds(attacked) };
    }
    const reserved = await this.#reserve(this.#pair, `lock:pair:${pair}`);
    if (reserved.wait) return { allowed: false, scope: "pair", retryAfterSeconds: reserved.wait };
    let delayMs = 0;
    const domain = parseEmail(attempt.account.trim())?.domain;
    if (domain && !familiar && this.#domain.length > 0) {
      const counts = await Promise.all(
        this.#domain.map(({ window, name }) => window.peek(`lock:domain:${domain}:${name}`)),
      );
      if (counts.some((c, i) => c.estimate >= this.#domain[i].limit)) delayMs = this.#domainDelayMs;
    }
    return this.#ticket(attempt, reserved.at, delayMs, trusted);
  }

  /** Marks the network of `ip` familiar for `account` without an attempt (tests, imports). */
  async markFamiliar(account: string, ip: string): Promise<void> {
    await this.#store.set(familiarKey(accountKey(account), ip), "1", this.#familiarMs);
  }

  /** Active blocks for an address or an account (`relay limits show`). */
  async status(target: string): Promise<LockoutStatus> {
    const { name, keys } = await this.#keysFor(target);
    const ttls = await Promise.all(keys.map(([, k]) => this.#store.ttl(k)));
    const blocks = keys.flatMap(([scope, , other], i) =>
      ttls[i] === null
        ? []
        : [{ scope, ...(other ? { with: other } : {}), retryAfterSeconds: seconds(ttls[i]!) }]
    ).sort((a, b) => b.retryAfterSeconds - a.retryAfterSeconds);
    return { target: name, blocks };
  }

  /**
   * Lifts every block on an address or an account and forgets the failures
   * that led to them (`relay limits clear`). Resolves what was lifted.
   */
  async clear(target: string): Promise<LockoutStatus> {
    const before = await this.status(target);
    const { name, keys, counters } = await this.#keysFor(target);
    await Promise.all([
      ...keys.map(([, k]) => this.#store.delete(k)),
      ...counters.map((c) => Promise.all([this.#minute.reset(c), this.#hour.reset(c)])),
    ]);
    return { target: name, blocks: before.blocks };
  }

  // --- internals ------------------------------------------------------------------

  #ticket(attempt: LoginAttempt, at: number, delayMs: number, trusted: boolean): LoginTicket {
    let settled = false;
    return {
      allowed: true,
      delayMs,
      ...(delayMs > 0 ? { scope: "domain-slow" as const } : {}),
      finish: async (outcome) => {
        if (settled) throw new Error("finish called twice");
        settled = true;
        return await this.#finish(attempt, at, outcome, trusted);
      },
    };
  }

  async #finish(
    attempt: LoginAttempt,
    at: number,
    outcome: LoginOutcome,
    trusted: boolean,
  ): Promise<{ blocks: LockoutBlock[]; next: LockoutRefusal | null }> {
    const ip = key(attempt.ip);
    const token = attempt.kind === "token";
    const windows = token ? this.#token : this.#pair;
    const counter = token ? `lock:token:${ip}` : `lock:pair:${ip}|${accountKey(attempt.account)}`;
    const reserved = !(token && trusted);
    if (outcome === "failure" && attempt.credentialFingerprint && !token) {
      const seen = `lock:seen:${accountKey(attempt.account)}:${attempt.credentialFingerprint}`;
      if (await this.#store.increment(seen, HOUR) > 1) outcome = "neutral";
    }
    if (outcome !== "failure") {
      if (reserved) {
        await Promise.all(
          windows.map(({ window, name }) => window.giveBack(`${counter}:${name}`, at)),
        );
      }
      if (outcome === "success" && !token && attempt.ip !== "") {
        await this.markFamiliar(attempt.account, attempt.ip);
      }
      return { blocks: [], next: null };
    }
    const blocks: LockoutBlock[] = [];
    if (token) {
      if (reserved) await this.#blockIfOver(this.#token, counter, "token", ip, blocks);
      const next = trusted ? null : await this.#blocked([["token", blockKey("token", ip)]]);
      return { blocks, next };
    }
    const account = accountKey(attempt.account);
    const pair = `${ip}|${account}`;
    await this.#blockIfOver(this.#pair, counter, "pair", pair, blocks);
    // Spraying: distinct accounts failing from this address.
    if (!trusted && this.#accountsPerAddress > 0) {
      const first = await this.#store.increment(`lock:spray:${ip}:${account}`, HOUR) === 1;
      if (first) {
        const count = await this.#hour.hit(`lock:spray:${ip}`);
        if (count.estimate >= this.#accountsPerAddress) {
          const ms = Math.max(
            this.#blockMs,
            this.#hour.msUntilBelow(count, this.#accountsPerAddress),
          );
          if (await this.#setBlock(blockKey("address", ip), ms)) {
            blocks.push({ scope: "address", seconds: seconds(ms) });
          }
        }
      }
    }
    // The account across addresses: under attack, only familiar networks go on.
    if (this.#accountPerHour > 0) {
      const count = await this.#hour.hit(`lock:account:${account}`);
      if (count.estimate >= this.#accountPerHour) {
        const attack = `lock:attack:${account}`;
        const fresh = await this.#store.ttl(attack) === null;
        await this.#store.set(attack, "1", this.#attackMs);
        if (fresh) blocks.push({ scope: "account-unfamiliar", seconds: seconds(this.#attackMs) });
      }
    }
    const domain = parseEmail(attempt.account.trim())?.domain;
    if (domain) {
      await Promise.all(
        this.#domain.map(({ window, name }) => window.hit(`lock:domain:${domain}:${name}`)),
      );
    }
    await this.#index(`lock:index:${ip}`, account);
    await this.#index(`lock:index:${account}`, ip);
    const checks: [LockoutScope, string][] = [["pair", blockKey("pair", pair)]];
    if (!trusted) checks.push(["address", blockKey("address", ip)]);
    let next = await this.#blocked(checks);
    if (!next && !await this.#familiar(account, attempt.ip)) {
      const attacked = await this.#store.ttl(`lock:attack:${account}`);
      if (attacked !== null) {
        next = {
          allowed: false,
          scope: "account-unfamiliar",
          retryAfterSeconds: seconds(attacked),
        };
      }
    }
    return { blocks, next };
  }

  /**
   * Counts the attempt in every window first; when one is over its limit the
   * attempt is given back and the seconds until it would fit are returned
   * (0: reserved).
   */
  async #reserve(windows: Window[], counter: string): Promise<{ wait: number; at: number }> {
    const counts = await Promise.all(
      windows.map(({ window, name }) => window.hit(`${counter}:${name}`)),
    );
    // The store's time of the hit: a give-back must find the window it went into.
    const at = counts[0]?.now ?? 0;
    let waitMs = 0;
    counts.forEach((count, i) => {
      const { window, limit } = windows[i];
      // The attempt itself is in the count: more than `limit` in flight or failed is too many.
      if (count.estimate > limit) waitMs = Math.max(waitMs, window.msUntilBelow(count, limit + 1));
    });
    if (waitMs === 0) return { wait: 0, at };
    await Promise.all(
      windows.map(({ window, name }) => window.giveBack(`${counter}:${name}`, at)),
    );
    return { wait: seconds(waitMs), at };
  }

  /** After a failure: blocks `id` in `scope` when a window reached its limit. */
  async #blockIfOver(
    windows: Window[],
    counter: string,
    scope: LockoutScope,
    id: string,
    blocks: LockoutBlock[],
  ): Promise<void> {
    const counts = await Promise.all(
      windows.map(({ window, name }) => window.peek(`${counter}:${name}`)),
    );
    let ms = 0;
    counts.forEach((count, i) => {
      const { window, limit } = windows[i];
      if (count.estimate >= limit) {
        ms = Math.max(ms, this.#blockMs, window.msUntilBelow(count, limit));
      }
    });
    if (ms > 0 && await this.#setBlock(blockKey(scope, id), ms)) {
      blocks.push({ scope, seconds: seconds(ms) });
    }
  }

  /** Sets a block unless a longer one is in place; whether it was set. */
  async #setBlock(key: string, ms: number): Promise<boolean> {
    const left = await this.#store.ttl(key);
    if (left !== null && left >= ms) return false;
    await this.#store.set(key, "1", ms);
    return true;
  }

  /** The longest of the given blocks in force, or `null`. */
  async #blocked(checks: [LockoutScope, string][]): Promise<LockoutRefusal | null> {
    const ttls = await Promise.all(checks.map(([, k]) => this.#store.ttl(k)));
    let worst: LockoutRefusal | null = null;
    ttls.forEach((ms, i) => {
      if (ms !== null && (worst === null || seconds(ms) > worst.retryAfterSeconds)) {
        worst = { allowed: false, scope: checks[i][0], retryAfterSeconds: seconds(ms) };
      }
    });
    return worst;
  }

  async #familiar(account: string, ip: string): Promise<boolean> {
    if (ip === "") return false;
    return await this.#store.get(familiarKey(account, ip)) !== null;
  }

  /**
   * Remembers which accounts failed from an address and the reverse, so
   * `show` and `clear` find pair blocks without scanning the store. A
   * read-modify-write: two nodes may lose an entry, which only hides it from
   * `show` (the block still expires).
   */
  async #index(indexKey: string, entry: string): Promise<void> {
    const list = (await this.#store.get(indexKey))?.split("\n") ?? [];
    if (list.includes(entry)) return;
    list.push(entry);
    await this.#store.set(indexKey, list.slice(-INDEX_MAX).join("\n"), DAY);
  }

  async #keysFor(target: string): Promise<{
    name: string;
    keys: [LockoutScope, string, string?][];
    counters: string[];
  }> {
    const text = target.trim();
    if (text.includes("@")) {
      const account = accountKey(text);
      const addresses = (await this.#store.get(`lock:index:${account}`))?.split("\n") ?? [];
      return {
        name: account,
        keys: [
          ["account-unfamiliar", `lock:attack:${account}`],
          ...addresses.map((ip): [LockoutScope, string, string] => [
            "pair",
            blockKey("pair", `${ip}|${account}`),
            ip,
          ]),
        ],
        counters: [
          `lock:account:${account}`,
          ...addresses.flatMap((ip) => windowKeys(`lock:pair:${ip}|${account}`)),
        ],
      };
    }
    const ip = key(text);
    const accounts = (await this.#store.get(`lock:index:${ip}`))?.split("\n") ?? [];
    return {
      name: ip,
      keys: [
        ["address", blockKey("address", ip)],
        ["token", blockKey("token", ip)],
        ...accounts.map((a): [LockoutScope, string, string] => [
          "pair",
          blockKey("pair", `${ip}|${a}`),
          a,
        ]),
      ],
      counters: [
        `lock:spray:${ip}`,
        ...windowKeys(`lock:token:${ip}`),
        ...accounts.flatMap((a) => windowKeys(`lock:pair:${ip}|${a}`)),
      ],
    };
  }
}

/** The per-minute and per-hour counters of a {@link Window} pair. */
function windowKeys(counter: string): string[] {
  return [`${counter}:m`, `${counter}:h`];
}

function blockKey(scope: LockoutScope, id: string): string {
  return `lock:block:${scope}:${id}`;
}

function familiarKey(account: string, ip: string): string {
  return `lock:familiar:${account}:${networkOf(ip)}`;
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** The canonical account key: a parsed address, else the typed text lower-cased. */
function accountKey(typed: string): string {
  const text = typed.trim();
  return key(parseEmail(text)?.canonical ?? text.toLowerCase());
}

/** Keeps store keys short whatever a client typed (AUTH lines may be 12 KB). */
function key(text: string): string {
  return text.length <= 256 ? text : "#" + createHash("sha256").update(text).digest("base64url");
}

/**
 * The network an address belongs to for familiarity: its /24 (IPv4) or /64
 * (IPv6), as written by the "familiar" keys. Anything else is itself.
 */
export function networkOf(ip: string): string {
  if (isIPv4(ip)) return ip.split(".").slice(0, 3).join(".") + ".0/24";
  if (!isIPv6(ip)) return ip;
  const mapped = ip.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i);
  if (mapped) return networkOf(mapped[1]);
  const [head, tail = ""] = ip.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = ip.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}
