/**
 * `relay check`: validates a configuration file and everything `serve`
 * checks before it binds a port, and prints every problem with its key, or a
 * summary of what the file configures. `serve` runs the same
 * {@link preflight} first, so a config that passes `check` starts.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { ConfigError, type ConfigIssue, loadConfigLenient } from "../config/mod.ts";
import type { Config } from "../config/mod.ts";
import { parseListen } from "../config/listen.ts";
import { checkDeliveryConfig } from "../delivery/mod.ts";
import { readLdapCa } from "../auth/ldap/ca.ts";
import { DkimKeyring } from "../dkim/mod.ts";
import { loadTlsMaterial, pathExists, SniCertificates, TlsMaterialError } from "../tls/mod.ts";

/** Streams the command writes to (injectable for tests). */
export interface CheckIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const defaultIo: CheckIo = {
  stdout: (line) => console.log(line),
  stderr: (line) => console.error(line),
};

/** The message of an error, for an issue line. */
function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `tls.cert`/`tls.key`: readable, PEM, matching; unless they will be generated. */
async function checkTls(config: Config): Promise<ConfigIssue[]> {
  const { cert, key, generate_if_missing: generate } = config.tls;
  const issues: ConfigIssue[] = [];
  if (!(generate && !(await pathExists(cert) && await pathExists(key)))) {
    try {
      await loadTlsMaterial({ cert, key });
    } catch (error) {
      if (!(error instanceof TlsMaterialError)) throw error;
      issues.push({ key: error.path === key ? "tls.key" : "tls.cert", message: error.message });
    }
  }
  for (const [index, entry] of config.tls.certificates.entries()) {
    try {
      await SniCertificates.load([entry], config.tls.min_version);
    } catch (error) {
      const which = error instanceof TlsMaterialError && error.path === entry.key ? "key" : "cert";
      issues.push({ key: `tls.certificates.${index}.${which}`, message: reason(error) });
    }
  }
  return issues;
}

/** The listen addresses serve binds, by key. */
function listenKeys(config: Config): [string, string][] {
  const keys: [string, string][] = [];
  if (config.smtps.enabled) keys.push(["smtps.listen", config.smtps.listen]);
  if (config.submission.enabled) keys.push(["submission.listen", config.submission.listen]);
  if (config.oauth.enabled) keys.push(["oauth.listen", config.oauth.listen]);
  return keys;
}

/** Host names in listen addresses resolve (as the listener's getaddrinfo will). */
async function checkListenHosts(config: Config): Promise<ConfigIssue[]> {
  const issues = await Promise.all(
    listenKeys(config).map(async ([key, listen]) => {
      const { hostname } = parseListen(listen);
      if (isIP(hostname) !== 0) return null;
      try {
        await lookup(hostname);
        return null;
      } catch (error) {
        const code = (error as { code?: string }).code ?? reason(error);
        return { key, message: `cannot resolve host ${JSON.stringify(hostname)} (${code})` };
      }
    }),
  );
  return issues.filter((issue) => issue !== null);
}

/**
 * Every check `serve` makes before it binds: TLS files, backend URLs and CA
 * files, the LDAP CA file, name resolution of listen hosts. Resolves every
 * problem found (empty when none), each with its key.
 */
export async function preflight(config: Config): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  issues.push(...await checkTls(config));
  for (const problem of await checkDeliveryConfig(config.relay)) {
    const at = problem.indexOf(": ");
    issues.push({ key: problem.slice(0, at), message: problem.slice(at + 2) });
  }
  if (config.auth.backends.includes("ldap")) {
    try {
      await readLdapCa(config.ldap);
    } catch (error) {
      issues.push({ key: "ldap.ca", message: `cannot read ${config.ldap.ca}: ${reason(error)}` });
    }
  }
  if (config.dkim.enabled) {
    try {
      await DkimKeyring.load(config.dkim.dir);
    } catch (error) {
      issues.push({ key: "dkim.dir", message: reason(error).replace(/^dkim\.dir: /, "") });
    }
  }
  issues.push(...await checkListenHosts(config));
  return issues;
}

/**
 * Loads the configuration and runs {@link preflight}; every problem of both
 * (a bad key's own check runs on its default, and is not reported twice).
 *
 * @throws {ConfigError} listing every problem with its key
 */
export async function loadCheckedConfig(
  path: string | undefined,
): Promise<{ config: Config; path: string | null }> {
  const loaded = await loadConfigLenient(path);
  const issues = [...loaded.issues];
  if (loaded.config !== null) {
    const bad = new Set(issues.map((issue) => issue.key));
    issues.push(...(await preflight(loaded.config)).filter((issue) => !bad.has(issue.key)));
  }
  if (issues.length > 0 || loaded.config === null) {
    throw new ConfigError(
      loaded.path === null ? "(no config file: embedded defaults)" : loaded.file,
      issues,
    );
  }
  return { config: loaded.config, path: loaded.path };
}

/** Checks the file at `path` (default path when undefined); exit code 0 when valid. */
export async function runCheck(path: string | undefined, io: CheckIo = defaultIo): Promise<number> {
  try {
    const { config, path: used } = await loadCheckedConfig(path);
    io.stdout(`${used ?? "(no config file: embedded defaults)"}: ok`);
    io.stdout(`  smtps      ${config.smtps.enabled ? config.smtps.listen : "disabled"}`);
    io.stdout(`  submission ${config.submission.enabled ? config.submission.listen : "disabled"}`);
    io.stdout(`  oauth      ${config.oauth.enabled ? config.oauth.listen : "disabled"}`);
    io.stdout(`  tls        profile ${config.tls.profile}, TLS >= ${config.tls.min_version}`);
    io.stdout(`  auth       ${config.auth.backends.join(", ")}`);
    io.stdout(`  relay      ${config.relay.url}`);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`${error.file}: ${error.issues.length} error(s)`);
    for (const issue of error.issues) io.stderr(`  ${issue.key || "(file)"}: ${issue.message}`);
    return 1;
  }
}
