/**
 * `relay limits show|clear ADDRESS|ACCOUNT`: see and lift login lockouts.
 *
 * The lockout counters live in the running server's state store (in memory
 * by default), which another process cannot read. So the command asks the
 * server through its admin listener (`GET` / `DELETE /limits/<target>`,
 * with `admin.token_file`'s bearer token when one is set): it needs a
 * running relay with `[admin] enabled = true`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Config } from "../config/mod.ts";
import { parseListen } from "../config/listen.ts";
import type { LockoutStatus } from "../policy/lockout.ts";
import { readAdminToken } from "../observability/admin_server.ts";

/** Where the command writes (injectable for tests). */
export interface LimitsCommandOptions {
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
}

/** The admin listener's URL from `admin.listen` (a wildcard address is reached on loopback). */
export function adminUrl(config: Config): string {
  const { hostname, port } = parseListen(config.admin.listen);
  const host = hostname === "0.0.0.0" || hostname === ""
    ? "127.0.0.1"
    : hostname === "::"
    ? "::1"
    : hostname;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Formats a status as lines (`TARGET: SCOPE blocked for N s`). */
export function formatStatus(status: LockoutStatus): string[] {
  if (status.blocks.length === 0) return [`${status.target}: no block`];
  return status.blocks.map((b) =>
    `${status.target}: ${b.scope}${
      b.with ? ` with ${b.with}` : ""
    } blocked for ${b.retryAfterSeconds} s`
  );
}

/** Runs `relay limits ...`; resolves the exit code. */
export async function runLimitsCommand(
  args: string[],
  config: Config,
  options: LimitsCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? console.log;
  const err = options.stderr ?? console.error;
  const { values, positionals } = parseArgs({
    args,
    options: { url: { type: "string" }, json: { type: "boolean" } },
    allowPositionals: true,
  });
  const [sub, target, ...extra] = positionals;
  if ((sub !== "show" && sub !== "clear") || !target || extra.length > 0) {
    err("usage: relay limits show|clear ADDRESS|ACCOUNT [--url URL] [--json]");
    return 2;
  }
  if (!config.admin.enabled && !values.url) {
    err(
      "relay limits: [admin] enabled = false: the command talks to the running relay's admin listener",
    );
    return 1;
  }
  const base = (values.url ?? adminUrl(config)).replace(/\/+$/, "");
  const headers: Record<string, string> = {};
  if (config.admin.token_file) {
    headers.authorization = `Bearer ${await readAdminToken(config.admin.token_file)}`;
  }
  let response: Response;
  try {
    response = await fetch(`${base}/limits/${encodeURIComponent(target)}`, {
      method: sub === "clear" ? "DELETE" : "GET",
      headers,
    });
  } catch (error) {
    err(
      `relay limits: cannot reach the relay at ${base} (admin.listen): ${(error as Error).message}`,
    );
    return 1;
  }
  if (!response.ok) {
    err(`relay limits: ${base} answered ${response.status}: ${(await response.text()).trim()}`);
    return 1;
  }
  const status = await response.json() as LockoutStatus;
  if (values.json) {
    out(JSON.stringify(status, null, 2));
    return 0;
  }
  if (sub === "clear") {
    const n = status.blocks.length;
    out(`${status.target}: lifted ${n} block${n === 1 ? "" : "s"}`);
    if (n > 0) { for (const line of formatStatus(status)) out(`  was: ${line}`); }
    return 0;
  }
  for (const line of formatStatus(status)) out(line);
  return 0;
}
