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

/** A backend's target and CA certificates, checked but not yet connected or opened. */
async function prepare(key: string, s: Settings) {
  let target;
  try {
    target = parseRelayUrl(s.url);
  } catch (error) {
    if (error instanceof RelayUrlError) throw new RelayUrlError(`${key}: ${error.message}`);
    throw error;
  }
  if (target.kind === "file") return { target, caCerts: undefined };
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
  return { target, caCerts };
}

async function build(
  label: string,
  key: string,
  s: Settings,
  options: CreateDeliveryBackendOptions,
): Promise<DeliveryBackend> {
  const { target, caCerts } = await prepare(key, s);
  if (target.kind === "file") return await FileBackend.open(target.dir);
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
  const [base, ...routes] = backendSettings(relay);
  const created: DeliveryBackend[] = [];
  try {
    const defaultBackend = await build("default", base.key, base.settings, options);
    created.push(defaultBackend);
    if (routes.length === 0) return defaultBackend;
    const map = new Map<string, DeliveryBackend>();
    for (const { domain, key, settings } of routes) {
      const backend = await build(domain, key, settings, options);
      created.push(backend);
      map.set(domain, backend);
    }
    return new RoutingBackend(defaultBackend, map);
  } catch (error) {
    await Promise.all(created.map((b) => b.close()));
    throw error;
  }
}

/**
 * Every check {@linkcode createDeliveryBackend} makes before it opens
 * anything (URLs, credentials in pairs, readable `ca` files), for every
 * backend; one message per problem, each starting with its key.
 */
export async function checkDeliveryConfig(relay: RelayConfig): Promise<string[]> {
  const problems: string[] = [];
  for (const { key, settings } of backendSettings(relay)) {
    try {
      await prepare(key, settings);
    } catch (error) {
      if (!(error instanceof RelayUrlError)) throw error;
      problems.push(error.message);
    }
  }
  return problems;
}

/** The default backend's settings, then each route's after inheritance. */
function backendSettings(
  relay: RelayConfig,
): { domain: string; key: string; settings: Settings }[] {
  const { routes, ...base } = relay;
  // Credentials and the certificate name belong to one host: never inherited.
  const { username: _u, password: _p, servername: _s, ...inherited } = base;
  return [
    { domain: "default", key: "relay.url", settings: base },
    ...Object.entries(routes).map(([domain, route]) => ({
      domain,
      key: `relay.routes.${domain}.url`,
      settings: { ...inherited, ...definedOnly(route) } as Settings,
    })),
  ];
}

function definedOnly(route: RelayRouteConfig): Partial<Settings> {
  return Object.fromEntries(Object.entries(route).filter(([, v]) => v !== undefined));
}
