/**
 * Per-sender-domain routing (Postfix's sender_dependent_relayhost_maps): a
 * message goes to the route of its envelope sender's domain, or to the
 * default backend. A message with the null sender (a bounce) is routed by
 * its first recipient's domain, so a DSN, addressed to the original sender,
 * travels the route the original message took.
 *
 * @module
 */
import { type Envelope, normalizeDomain, type RecipientOutcome } from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import type { DeliveryBackend } from "./backend.ts";

const logger = log("delivery");

/** A chosen route. */
export interface RouteChoice {
  /** `default` or the route's domain. */
  label: string;
  /** The backend of that route. */
  backend: DeliveryBackend;
}

/** The domain a message is routed by (lower-case ASCII), or null when it has none. */
export function routingDomain(envelope: Pick<Envelope, "from" | "recipients">): string | null {
  const address = envelope.from !== "" ? envelope.from : envelope.recipients[0] ?? "";
  const at = address.lastIndexOf("@");
  return at === -1 ? null : normalizeDomain(address.slice(at + 1));
}

/** Sends each message to the backend of its sender's domain. */
export class RoutingBackend implements DeliveryBackend {
  readonly name: string;
  #default: DeliveryBackend;
  #routes: Map<string, DeliveryBackend>;

  /**
   * Creates the router.
   *
   * @param defaultBackend where messages of other domains go
   * @param routes domain (any case, IDN allowed) → backend
   */
  constructor(defaultBackend: DeliveryBackend, routes: Map<string, DeliveryBackend>) {
    this.#default = defaultBackend;
    this.#routes = new Map();
    for (const [domain, backend] of routes) {
      const key = normalizeDomain(domain);
      if (key === null) throw new Error(`relay.routes: invalid domain ${JSON.stringify(domain)}`);
      this.#routes.set(key, backend);
    }
    this.name = `routes(${[...this.#routes.keys()].join(",")}; default ${defaultBackend.name})`;
  }

  /** The route a message takes. */
  routeFor(envelope: Pick<Envelope, "from" | "recipients">): RouteChoice {
    const domain = routingDomain(envelope);
    const backend = domain === null ? undefined : this.#routes.get(domain);
    return backend ? { label: domain!, backend } : { label: "default", backend: this.#default };
  }

  async deliver(
    envelope: Envelope,
    data: Uint8Array,
    recipients: string[],
  ): Promise<RecipientOutcome[]> {
    const route = this.routeFor(envelope);
    logger.debug("{id}: from=<{from}> routed to {route} ({backend})", {
      id: envelope.id,
      from: envelope.from,
      route: route.label,
      backend: route.backend.name,
    });
    const outcomes = await route.backend.deliver(envelope, data, recipients);
    return outcomes.map((o) => o.via ? o : { ...o, via: `${route.label} ${route.backend.name}` });
  }

  /** Closes every route's backend. */
  async close(): Promise<void> {
    const all = new Set([this.#default, ...this.#routes.values()]);
    await Promise.all([...all].map((b) => b.close()));
  }
}
