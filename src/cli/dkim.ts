/**
 * `relay dkim`: DKIM signing keys per domain, their DNS records and rotation.
 *
 * ```
 * relay dkim generate --domain D [--selector S] [--algorithm ed25519|rsa] [--bits 2048]
 * relay dkim dns [--domain D]
 * relay dkim list
 * relay dkim rotate --domain D [--wait HOURS] [--overlap DAYS]
 * ```
 *
 * Keys are written under `[dkim] dir` (default `config/dkim`); a running
 * relay reads them on SIGHUP.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Config } from "../config/mod.ts";
import {
  checkDomain,
  DkimKeyError,
  DkimKeyStore,
  dnsRecord,
  type DomainKey,
  keyState,
  zoneLine,
} from "../dkim/mod.ts";

const USAGE = `Usage:
  relay dkim generate --domain D [--selector S] [--algorithm ed25519|rsa] [--bits 2048]
      New keys for D, signing at once (Ed25519 and RSA unless --algorithm); prints their DNS records.
  relay dkim dns [--domain D]
      The DNS TXT records to publish for every key not expired.
  relay dkim list
      Every key with its state (pending, active, retired, expired).
  relay dkim rotate --domain D [--wait HOURS] [--overlap DAYS]
      New keys under new selectors, signing after --wait (48); the old ones stop then and stay
      published --overlap (7) days longer.`;

/** Output sinks and clock, for tests. */
export interface DkimCommandOptions {
  /** Receives normal output, one line per call; defaults to `console.log`. */
  stdout?: (line: string) => void;
  /** Receives errors, one line per call; defaults to `console.error`. */
  stderr?: (line: string) => void;
  /** The clock; defaults to now. */
  now?: Date;
}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  now: Date;
  store: DkimKeyStore;
}

/**
 * Runs `relay dkim <generate|dns|list|rotate> ...`.
 *
 * @param args The arguments after `dkim`.
 * @param config The loaded configuration (`dkim.dir`).
 * @param options Output sinks and clock (tests).
 * @returns The exit code: 0 done, 1 failed, 2 usage error.
 */
export async function runDkimCommand(
  args: string[],
  config: Config,
  options: DkimCommandOptions = {},
): Promise<number> {
  const io: Io = {
    out: options.stdout ?? ((line: string) => console.log(line)),
    err: options.stderr ?? ((line: string) => console.error(line)),
    now: options.now ?? new Date(),
    store: new DkimKeyStore(config.dkim.dir),
  };
  const [subcommand, ...rest] = args;
  try {
    switch (subcommand) {
      case "generate":
        return await generate(rest, io);
      case "dns":
        return await dns(rest, io);
      case "list":
        return await list(rest, io);
      case "rotate":
        return await rotate(rest, io);
      case undefined:
        io.err(USAGE);
        return 2;
      default:
        io.err(`relay dkim: unknown subcommand "${subcommand}"`);
        io.err(USAGE);
        return 2;
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`relay dkim ${subcommand}: ${error.message}`);
      io.err(USAGE);
      return 2;
    }
    const known = error instanceof DkimKeyError || error instanceof Error;
    io.err(`relay dkim ${subcommand}: ${known ? (error as Error).message : String(error)}`);
    return 1;
  }
}

class UsageError extends Error {}

type Options = Record<string, { type: "string" | "boolean" }>;

function parse(args: string[], options: Options): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function number(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${flag} must be a number from ${min} to ${max}`);
  }
  return n;
}

function required(value: unknown, flag: string): string {
  if (typeof value !== "string" || value === "") throw new UsageError(`--${flag} is required`);
  return value;
}

function printRecords(keys: DomainKey[], io: Io): void {
  for (const key of keys) {
    const state = keyState(key, io.now);
    const until = state === "retired" && key.publishUntil
      ? `, publish until ${key.publishUntil}`
      : state === "pending"
      ? `, signs from ${key.signFrom}`
      : "";
    io.out(`; ${key.domain} ${key.algorithm} selector ${key.selector} (${state}${until})`);
    io.out(zoneLine(dnsRecord(key)));
  }
}

async function generate(args: string[], io: Io): Promise<number> {
  const o = parse(args, {
    domain: { type: "string" },
    selector: { type: "string" },
    algorithm: { type: "string" },
    bits: { type: "string" },
  });
  const domain = required(o.domain, "domain");
  const algorithm = o.algorithm;
  if (algorithm !== undefined && algorithm !== "ed25519" && algorithm !== "rsa") {
    throw new UsageError("--algorithm must be ed25519 or rsa");
  }
  const keys = await io.store.generate(domain, {
    selector: o.selector as string | undefined,
    algorithm,
    bits: number(o.bits, "bits", 1024, 8192),
    now: io.now,
  });
  io.out(
    `Created ${keys.map((k) => `${k.selector} (${k.algorithm})`).join(" and ")} ` +
      `for ${keys[0].domain} in ${io.store.dir}/${keys[0].domain}/`,
  );
  io.out("Publish these DNS records, then reload the relay (SIGHUP) or start it:");
  printRecords(keys, io);
  return 0;
}

async function dns(args: string[], io: Io): Promise<number> {
  const o = parse(args, { domain: { type: "string" } });
  const keys = o.domain === undefined
    ? await io.store.all()
    : (await io.store.keys(o.domain as string)).map((k) => ({
      domain: checkDomain(o.domain as string),
      ...k,
    }));
  const published = keys.filter((k) => keyState(k, io.now) !== "expired");
  if (published.length === 0) {
    io.err(`relay dkim dns: no keys${o.domain ? ` for ${o.domain}` : ""} in ${io.store.dir}`);
    return 1;
  }
  printRecords(published, io);
  return 0;
}

async function list(args: string[], io: Io): Promise<number> {
  parse(args, {});
  const keys = await io.store.all();
  if (keys.length === 0) {
    io.out(`no DKIM keys in ${io.store.dir} (relay dkim generate --domain D)`);
    return 0;
  }
  io.out("DOMAIN\tSELECTOR\tALGORITHM\tSTATE\tSIGNS FROM\tSIGNS UNTIL\tPUBLISH UNTIL");
  for (const k of keys) {
    io.out(
      [
        k.domain,
        k.selector,
        k.algorithm + (k.bits ? `-${k.bits}` : ""),
        keyState(k, io.now),
        k
          .signFrom,
        k.signUntil ?? "-",
        k.publishUntil ?? "-",
      ].join("\t"),
    );
  }
  return 0;
}

async function rotate(args: string[], io: Io): Promise<number> {
  const o = parse(args, {
    domain: { type: "string" },
    wait: { type: "string" },
    overlap: { type: "string" },
    bits: { type: "string" },
  });
  const domain = required(o.domain, "domain");
  const keys = await io.store.rotate(domain, {
    waitHours: number(o.wait, "wait", 0, 24 * 365),
    overlapDays: number(o.overlap, "overlap", 0, 3650),
    bits: number(o.bits, "bits", 1024, 8192),
    now: io.now,
  });
  io.out(
    `Created ${keys.map((k) => `${k.selector} (${k.algorithm})`).join(" and ")} for ` +
      `${keys[0].domain}; they sign from ${keys[0].signFrom}, the old keys stop then.`,
  );
  io.out("Publish these DNS records now (keep the old ones until relay dkim dns drops them):");
  printRecords(keys, io);
  return 0;
}
