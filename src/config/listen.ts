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
  return z.string().regex(LISTEN, `expected "host:port", e.g. "${example}"`);
}

/** Splits `host:port` and `[v6]:port` (brackets removed). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const match = LISTEN.exec(listen);
  if (!match) throw new Error(`invalid listen address: ${listen}`);
  const port = Number(match[2]);
  if (port > 65535) throw new Error(`invalid listen port: ${listen}`);
  return { hostname: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}
