/**
 * Builds the delivery backend a `[relay]` section describes: the default
 * backend from `url`, and a {@linkcode RoutingBackend} in front when
 * `routes` are configured.
 *
 * @module
 */
import type { RelayConfig, RelayRouteConfig } from "../config/relay_schema.ts";
import type { DeliveryBackend } from "./backend.ts";
import { FileBackend } from "./file_backend.ts";
import { parseRelayUrl, RelayUrlError } from "./relay_url.ts";
import { RoutingBackend } from "./routing.ts";
import { SmtpBackend } from "./smtp_backend.ts";

/** Options for {@linkcode createDeliveryBackend}. */
export interface CreateDeliveryBackendOptions {
  /** Our name in EHLO (`server.hostname`). */
  hostname: string;
  /** Clock for the pools (tests). */
  now?: () => number;
}

/** Route settings after inheritance from `[relay]`. */
type Settings = Omit<RelayConfig, "routes" | "url"> & { url: string };

async function build(
  label: string,
  key: string,
  s: Settings,
  options: CreateDeliveryBackendOptions,
): Promise<DeliveryBackend> {
  let target;
  try {
    target = parseRelayUrl(s.url);
  } catch (error) {
    if (error instanceof RelayUrlError) throw new RelayUrlError(`${key}: ${error.message}`);
    throw error;
  }
  if (target.kind === "file") return await FileBackend.open(target.dir);
  if ((s.username === undefined) !== (s.password === undefined)) {
    throw new RelayUrlError(`${key}: username and password go together`);
  }
  let caCerts: string[] | undefined;
  if (s.ca !== undefined) {
    try {
      caCerts = [await Deno.readTextFile(s.ca)];
    } catch (error) {
      throw new RelayUrlError(
        `${key.replace(/url$/, "ca")}: cannot read ${s.ca}: ${(error as Error).message}`,
      );
    }
  }
  // A backend that refused a connection is not asked again before the first retry is due.
  const firstRetryMs = s.retry_schedule[0] * 1000;
  return new SmtpBackend({
    route: label,
    host: target.host,
    port: target.port,
    security: target.security,
    display: target.display,
    username: s.username,
    password: s.password,
    caCerts,
    servername: s.servername,
    verify: s.verify,
    ehloName: options.hostname,
    poolSize: s.pool_size,
    maxMessagesPerConnection: s.max_messages_per_connection,
    idleTimeoutMs: s.idle_timeout * 1000,
    downCacheMs: Math.min(5_000, firstRetryMs / 2),
    timeouts: {
      connect: s.connect_timeout * 1000,
      command: s.command_timeout * 1000,
      data: s.data_timeout * 1000,
    },
    now: options.now,
  });
}

/**
 * Creates the backend for a validated `[relay]` section.
 *
 * @throws {RelayUrlError} a bad URL, an unreadable `ca` file, a lone username
 */
export async function createDeliveryBackend(
  relay: RelayConfig,
  options: CreateDeliveryBackendOptions,
): Promise<DeliveryBackend> {
  const { routes, ...base } = relay;
  const created: DeliveryBackend[] = [];
  try {
    const defaultBackend = await build("default", "relay.url", base, options);
    created.push(defaultBackend);
    const entries = Object.entries(routes);
    if (entries.length === 0) return defaultBackend;
    const map = new Map<string, DeliveryBackend>();
    for (const [domain, route] of entries) {
      // Credentials and the certificate name belong to one host: never inherited.
      const { username: _u, password: _p, servername: _s, ...inherited } = base;
      const settings: Settings = { ...inherited, ...definedOnly(route) };
      const backend = await build(domain, `relay.routes.${domain}.url`, settings, options);
      created.push(backend);
      map.set(domain, backend);
    }
    return new RoutingBackend(defaultBackend, map);
  } catch (error) {
    await Promise.all(created.map((b) => b.close()));
    throw error;
  }
}

function definedOnly(route: RelayRouteConfig): Partial<Settings> {
  return Object.fromEntries(Object.entries(route).filter(([, v]) => v !== undefined));
}
