/**
 * Listen addresses (`host:port`, `[v6]:port`): how the config spells them and
 * how a listener splits them. Shared by the SMTP listeners and the OAuth
 * server so both accept and read the same forms.
 *
 * @module
 */
import { z } from "zod";

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d{1,5})$/;

/** A zod schema for a listen address, e.g. `listenAddress("127.0.0.1:8465")` for the hint. */
export function listenAddress(example: string): z.ZodString {
  return z.string().regex(LISTEN, `expected "host:port", e.g. "${example}"`).refine(
    (listen) => !LISTEN.test(listen) || Number(LISTEN.exec(listen)![2]) <= 65535,
    "port out of range: expected 0 to 65535",
  );
}

/** Splits `host:port` and `[v6]:port` (brackets removed). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const match = LISTEN.exec(listen);
  if (!match) throw new Error(`invalid listen address: ${listen}`);
  const port = Number(match[2]);
  if (port > 65535) throw new Error(`invalid listen port: ${listen}`);
  return { hostname: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE:
    "address already in use (another process listens there: stop it or choose another port)",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "address not available (no network interface of this host has it)",
  ENOTFOUND: "the host name does not resolve",
};

/** The errno-style code of a failed bind, from node:net or from Deno.serve. */
function listenFailureCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  if (error instanceof Deno.errors.AddrInUse) return "EADDRINUSE";
  if (error instanceof Deno.errors.AddrNotAvailable) return "EADDRNOTAVAIL";
  if (error instanceof Deno.errors.PermissionDenied) return "EACCES";
  if (error instanceof Error && /failed to lookup address/.test(error.message)) return "ENOTFOUND";
  return undefined;
}

/**
 * An error for a listener that could not bind, naming its config key and
 * address, e.g. `smtps.listen = "127.0.0.1:8465": cannot listen: address
 * already in use (...)`. The original error is the cause.
 */
export function listenError(key: string, listen: string, error: unknown): Error {
  const code = listenFailureCode(error);
  const why = (code && LISTEN_FAILURES[code]) ??
    (error instanceof Error ? error.message : String(error));
  return new Error(`${key} = ${JSON.stringify(listen)}: cannot listen: ${why}`, { cause: error });
}
