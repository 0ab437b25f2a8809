/**
 * A session worker: the entry point of one of the `server.workers` threads.
 * It opens its own `node:net` listeners on the ports the main thread chose
 * (`reusePort`: the kernel spreads new connections over the threads), does
 * the TLS handshakes, PROXY headers, parsing and SASL decoding, and runs the
 * protocol layer; everything stateful is asked of the main thread
 * (`remote.ts`). Log records are forwarded to the main thread's logger.
 *
 * Started by `pool.ts`; loaded from a file under `deno run` with read access,
 * else from the bundle in `session_worker_bundle.ts` (`deno task bundle-worker`).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { configure, type LogRecord } from "@logtape/logtape";
import type tls from "node:tls";
import { CredentialFingerprinter } from "../policy/rate_limit.ts";
import { createOAuthBearer, createXoauth2 } from "../sasl/mod.ts";
import { oauthbearerFailureChallenge, xoauth2FailureChallenge } from "../sasl/mod.ts";
import type { MechanismSpec } from "../smtp/auth_exchange.ts";
import { TrustedProxies } from "../smtp/proxy_protocol.ts";
import { SmtpServer } from "../smtp/server.ts";
import { createServerContext } from "../tls/context.ts";
import { SniCertificates } from "../tls/sni.ts";
import type { LogRecordData, MainApi, TlsSnapshot, WorkerApi, WorkerInit } from "./protocol.ts";
import {
  remoteAudit,
  remoteAuthenticator,
  remoteBearer,
  remoteGate,
  remoteLockout,
  remotePolicy,
  RemoteSink,
} from "./remote.ts";
import { RpcPeer } from "./rpc.ts";

/** The bearer mechanisms a worker can offer, by name. */
const MECHANISMS: Record<string, MechanismSpec> = {
  XOAUTH2: { create: createXoauth2 },
  OAUTHBEARER: { create: createOAuthBearer },
};

function cloneableValue(value: unknown): unknown {
  if (value === null || typeof value !== "object" && typeof value !== "function") return value;
  try {
    return structuredClone(value);
  } catch {
    return String(value);
  }
}

/** A log record as plain data for the main thread. */
function recordData(record: LogRecord): LogRecordData {
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    properties[key] = cloneableValue(value);
  }
  return {
    category: [...record.category],
    level: record.level,
    message: record.message.map(cloneableValue),
    rawMessage: typeof record.rawMessage === "string"
      ? record.rawMessage
      : record.rawMessage.join("{}"),
    timestamp: record.timestamp,
    properties,
  };
}

class TlsState {
  context: tls.SecureContext | null = null;
  sni: SniCertificates | null = null;

  set(snapshot: TlsSnapshot | null): void {
    if (!snapshot) return;
    this.context = createServerContext(snapshot, { minVersion: snapshot.minVersion });
    this.sni = snapshot.sni.length > 0
      ? SniCertificates.fromMaterial(snapshot.sni, snapshot.minVersion)
      : null;
  }
}

let server: SmtpServer | null = null;
const tlsState = new TlsState();
// deno-lint-ignore prefer-const
let sink: RemoteSink;

const handlers: WorkerApi = {
  async start(init: WorkerInit) {
    await configure({
      reset: true,
      sinks: { main: (record: LogRecord) => peer.notify("log", [recordData(record)]) },
      loggers: [
        { category: ["relay"], lowestLevel: init.logLevel, sinks: ["main"] },
        { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
      ],
    });
    tlsState.set(init.tls);
    const bearer = init.bearer;
    const mechanisms: Record<string, MechanismSpec> = {};
    for (const name of bearer?.mechanisms ?? []) {
      const spec = MECHANISMS[name];
      if (!spec) throw new Error(`SASL mechanism ${name} cannot run on a session worker`);
      mechanisms[name] = spec;
    }
    const openid = bearer?.openidConfiguration;
    const fingerprint = init.fingerprintKey
      ? new CredentialFingerprinter(init.fingerprintKey)
      : undefined;
    server = new SmtpServer({
      listeners: init.listeners.map((l) => ({
        kind: l.kind,
        listen: `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}`,
        proxy: l.proxy && {
          trusted: new TrustedProxies(l.proxy.trusted),
          tlsTerminated: l.proxy.tlsTerminated,
          headerTimeoutMs: l.proxy.headerTimeoutMs,
        },
      })),
      reusePort: true,
      secureContext: init.tls ? () => tlsState.context! : null,
      sni: (name) => tlsState.sni?.lookup(name),
      handshakeTimeoutMs: init.handshakeTimeoutMs,
      gate: remoteGate(peer),
      session: {
        ...init.session,
        authenticator: remoteAuthenticator(peer),
        bearer: bearer ? remoteBearer(peer, openid) : undefined,
        bearerMechanisms: bearer ? mechanisms : undefined,
        bearerFailureChallenge: bearer
          ? (mechanism, status, scope) =>
            mechanism === "XOAUTH2"
              ? xoauth2FailureChallenge(status, scope)
              : oauthbearerFailureChallenge(status, scope, openid)
          : undefined,
        audit: remoteAudit(peer),
        lockout: init.has.lockout ? remoteLockout(peer) : undefined,
        fingerprint,
        policy: remotePolicy(peer, { connect: init.has.policyConnect, auth: init.has.policyAuth }),
        sink,
      },
    });
    await server.start();
    return server.listeners;
  },
  tls(snapshot) {
    tlsState.set(snapshot);
  },
  async shutdown(graceMs) {
    await server?.shutdown(graceMs);
    server = null;
  },
  sinkAck(id, bytes) {
    sink.acknowledge(id, bytes);
  },
};

const peer: RpcPeer<MainApi, WorkerApi> = new RpcPeer<MainApi, WorkerApi>(self, handlers);
sink = new RemoteSink(peer);
// SessionWorkers.crashForTest: an uncaught error, as a bug would throw.
self.addEventListener("message", (event: MessageEvent) => {
  if ((event.data as { crash?: boolean })?.crash === true) {
    setTimeout(() => {
      throw new Error("crash requested by a test");
    });
  }
});
