/**
 * `relay certs`: generate development certificates, show the configured one.
 *
 * ```
 * relay certs generate [--hostname H]... [--dir DIR] [--force]
 * relay certs show [--cert PATH]
 * ```
 *
 * @module
 */
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type { Config } from "../config/mod.ts";
import {
  type CertificateInfo,
  describeCertificate,
  generateDevCertificates,
  loadTlsMaterial,
  pathExists,
  TlsMaterialError,
} from "../tls/mod.ts";

const USAGE = `Usage:
  relay certs generate [--hostname H]... [--dir DIR] [--force]
      Create a development CA (reused when DIR already holds ca.crt/ca.key) and a server
      certificate for localhost, 127.0.0.1, ::1, server.hostname and every --hostname.
      Writes tls.cert/tls.key, or DIR/server.crt and DIR/server.key with --dir.
      An existing server certificate is kept unless --force is given.
  relay certs show [--cert PATH]
      Print subject, names, validity and fingerprint of tls.cert (or PATH).`;

const DAY_MS = 24 * 60 * 60 * 1000;

/** Where `certs` writes its output, and its clock; for tests. */
export interface CertsCommandOptions {
  /** Receives normal output, one line per call; defaults to `console.log`. */
  stdout?: (line: string) => void;
  /** Receives errors, one line per call; defaults to `console.error`. */
  stderr?: (line: string) => void;
  /** The clock; defaults to now. */
  now?: Date;
}

/**
 * Run `relay certs <generate|show> ...`.
 *
 * @param args The arguments after `certs`.
 * @param config The loaded configuration (`tls.*`, `server.hostname`).
 * @param options Output sinks and clock (tests).
 * @returns The process exit code: 0 done, 1 failed, 2 usage error.
 */
export async function runCertsCommand(
  args: string[],
  config: Config,
  options: CertsCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  const now = options.now ?? new Date();
  const [subcommand, ...rest] = args;
  try {
    switch (subcommand) {
      case "generate":
        return await generate(rest, config, { out, err, now });
      case "show":
        return await show(rest, config, { out, err, now });
      case undefined:
      case "help":
      case "--help":
      case "-h":
        (subcommand === undefined ? err : out)(USAGE);
        return subcommand === undefined ? 2 : 0;
      default:
        err(`relay certs: unknown subcommand "${subcommand}"`);
        err(USAGE);
        return 2;
    }
  } catch (error) {
    err(`relay certs ${subcommand}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  now: Date;
}

async function generate(args: string[], config: Config, io: Io): Promise<number> {
  const parsed = parse(io, () =>
    parseArgs({
      args,
      options: {
        hostname: { type: "string", multiple: true },
        dir: { type: "string" },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values);
  if (parsed === undefined) return 2;
  if (parsed.help) {
    io.out(USAGE);
    return 0;
  }
  const dirOption = parsed.dir;
  const dir = dirOption ?? dirname(config.tls.cert);
  const cert = dirOption === undefined ? config.tls.cert : join(dirOption, "server.crt");
  const key = dirOption === undefined ? config.tls.key : join(dirOption, "server.key");
  if (!parsed.force && await pathExists(cert)) {
    io.err(`relay certs generate: ${cert} already exists; use --force to replace it`);
    return 1;
  }
  const hostnames = [config.server.hostname, ...(parsed.hostname ?? [])];
  const paths = await generateDevCertificates({ dir, hostnames, now: io.now, cert, key });
  const info = describeCertificate(await Deno.readTextFile(paths.cert));
  io.out(`${paths.caGenerated ? "Created" : "Reused"} development CA ${paths.caCert}`);
  io.out(`Wrote server certificate ${paths.cert} and key ${paths.key}`);
  printInfo(info, io);
  io.out(`Clients must trust ${paths.caCert} (never share ${paths.caKey}).`);
  if (cert !== config.tls.cert || key !== config.tls.key) {
    io.out(
      `Note: the configuration serves tls.cert = ${config.tls.cert}, ` +
        `tls.key = ${config.tls.key}; point them at the new files to use them.`,
    );
  }
  return 0;
}

async function show(args: string[], config: Config, io: Io): Promise<number> {
  const parsed = parse(io, () =>
    parseArgs({
      args,
      options: {
        cert: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values);
  if (parsed === undefined) return 2;
  if (parsed.help) {
    io.out(USAGE);
    return 0;
  }
  const certOption = parsed.cert;
  const cert = certOption ?? config.tls.cert;
  let material;
  try {
    material = certOption === undefined
      ? await loadTlsMaterial({ cert, key: config.tls.key })
      : { cert: await Deno.readTextFile(cert) };
  } catch (error) {
    if (error instanceof TlsMaterialError) {
      io.err(`relay certs show: ${error.message}`);
      return 1;
    }
    if (error instanceof Deno.errors.NotFound) {
      io.err(`relay certs show: certificate file not found: ${cert}`);
      return 1;
    }
    throw error;
  }
  let info: CertificateInfo;
  try {
    info = describeCertificate(material.cert);
  } catch {
    io.err(`relay certs show: ${cert} holds no readable PEM certificate`);
    return 1;
  }
  io.out(`Certificate: ${cert}`);
  printInfo(info, io);
  if (certOption === undefined) io.out(`Key:         ${config.tls.key} (matches)`);
  return info.notAfter.getTime() <= io.now.getTime() ? 1 : 0;
}

function printInfo(info: CertificateInfo, io: Io): void {
  const daysLeft = Math.floor((info.notAfter.getTime() - io.now.getTime()) / DAY_MS);
  const remaining = info.notAfter.getTime() <= io.now.getTime()
    ? "EXPIRED"
    : `${daysLeft} days left`;
  io.out(`Subject:     ${info.subject}`);
  io.out(`Issuer:      ${info.issuer}`);
  io.out(`Names:       ${info.subjectAltNames.join(", ") || "(none)"}`);
  io.out(`Valid from:  ${info.notBefore.toISOString()}`);
  io.out(`Expires:     ${info.notAfter.toISOString()} (${remaining})`);
  io.out(`SHA-256:     ${info.fingerprintSha256}`);
}

/** Run a `parseArgs` call; on a usage error print it with the usage text. */
function parse<T>(io: Io, run: () => T): T | undefined {
  try {
    return run();
  } catch (error) {
    io.err(`relay certs: ${error instanceof Error ? error.message : String(error)}`);
    io.err(USAGE);
    return undefined;
  }
}
