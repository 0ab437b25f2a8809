/**
 * The worker side of the main thread's state: objects with the interfaces
 * a session and the listeners expect (authenticator, lockout, policy, sink,
 * audit, connection gate), each a thin forwarder over the RPC channel. What
 * they count is counted once, in the main thread, for every worker.
 *
 * @module
 */
import type { AuditEvent, AuditLog } from "../audit/audit_log.ts";
import type { BearerAuthenticator, PasswordAuthenticator } from "../auth/authenticator.ts";
import type { Envelope } from "../mail/envelope.ts";
import type { Lockout } from "../policy/lockout.ts";
import type { PolicyClient, PolicyTransaction, SessionPolicy } from "../smtp/policy.ts";
import { Replies } from "../smtp/replies.ts";
import type { ConnectionGate, GateOpenOptions, GateTicket } from "../smtp/server.ts";
import type { ListenerKind } from "../smtp/session.ts";
import type { MessageSink, SinkResult, SinkTransaction } from "../smtp/sink.ts";
import type { ClientData, MainApi, WorkerApi } from "./protocol.ts";
import type { RpcPeer } from "./rpc.ts";

/** The channel to the main thread, as a worker sees it. */
export type MainPeer = RpcPeer<MainApi, WorkerApi>;

/** Message bytes sent but not yet taken by the main thread's sink before `drain` waits. */
export const SINK_HIGH_WATER = 1024 * 1024;
/** ...and the level it waits for. */
export const SINK_LOW_WATER = 256 * 1024;

function clientData(client: PolicyClient): ClientData {
  return { session: client.session, ip: client.ip, port: client.port };
}

/** Fields that do not survive the structured clone become text. */
function cloneable(event: AuditEvent): AuditEvent {
  try {
    return structuredClone(event);
  } catch {
    return JSON.parse(
      JSON.stringify(
        event,
        (_, value) =>
          typeof value === "function" || typeof value === "symbol" ? String(value) : value,
      ),
    );
  }
}

/** The audit trail: events go to the main thread's (which also derives the metrics). */
export function remoteAudit(peer: MainPeer): AuditLog {
  return {
    record: (event) => peer.notify("audit", [cloneable(event)]),
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
    // The audit gate (`[audit] required`) is the policy's, which runs in the main thread.
    healthy: true,
    required: false,
  };
}

/** A check the main thread could not answer: the client may retry (454). */
function mainUnavailable(error: Error): { ok: false; reason: "temporary_failure"; detail: string } {
  return { ok: false, reason: "temporary_failure", detail: `main thread: ${error.message}` };
}

/** Password checks by the main thread's chain (one hash-worker pool and cache for all). */
export function remoteAuthenticator(peer: MainPeer): PasswordAuthenticator {
  return {
    name: "main",
    verifyPassword: (username, password) =>
      peer.call("verifyPassword", username, password).catch(mainUnavailable),
    close: () => Promise.resolve(),
  };
}

/** Bearer tokens checked by the main thread's verifier (its token cache serves all). */
export function remoteBearer(
  peer: MainPeer,
  openidConfiguration: string | undefined,
): BearerAuthenticator {
  return {
    verifyBearer: (username, token) =>
      peer.call("verifyBearer", username, token).catch(mainUnavailable),
    openidConfiguration,
  };
}

/** The lockout counters of the main thread's store. */
export function remoteLockout(peer: MainPeer): Pick<Lockout, "admitAddress" | "begin"> {
  return {
    admitAddress: (ip) => peer.call("lockoutAdmitAddress", ip),
    begin: async (attempt) => {
      const answer = await peer.call("lockoutBegin", attempt);
      if (!answer.allowed) return answer;
      const { ticket, ...rest } = answer;
      return { ...rest, finish: (outcome) => peer.call("lockoutFinish", ticket, outcome) };
    },
  };
}

/** The main thread's submission policy (domain rules, quotas, the audit gate). */
export function remotePolicy(
  peer: MainPeer,
  has: { connect: boolean; auth: boolean },
): SessionPolicy {
  const transaction = (tx: number): PolicyTransaction => ({
    rcpt: (address) => peer.call("txRcpt", tx, address),
    data: () => peer.call("txData", tx),
    message: (message) =>
      peer.call("txMessage", tx, { size: message.size, from: message.from && [...message.from] }),
    end: (accepted) => Promise.resolve(peer.notify("txEnd", [tx, accepted])),
  });
  return {
    connect: has.connect ? (client) => peer.call("policyConnect", clientData(client)) : undefined,
    auth: has.auth
      ? (client, identity) => peer.call("policyAuth", clientData(client), identity)
      : undefined,
    mail: async (client, identity, sender, params) => {
      const answer = await peer.call("policyMail", clientData(client), identity, sender, params);
      return "reply" in answer ? answer : { transaction: transaction(answer.transaction) };
    },
  };
}

/** The connection gate of the main thread: caps and rates counted once for every worker. */
export function remoteGate(peer: MainPeer): ConnectionGate {
  let next = 1;
  return {
    open(kind: ListenerKind, options?: GateOpenOptions): GateTicket {
      const id = next++;
      // Announced now only when the address comes later (a PROXY header); else with the admit.
      let announced = options?.awaitingAddress ?? false;
      if (announced) peer.notify("gateOpen", [id, kind]);
      let closed = false;
      return {
        admit: (ip) => {
          const open = announced ? undefined : kind;
          announced = true;
          return peer.call("gateAdmit", id, ip, open);
        },
        close: () => {
          if (closed) return;
          closed = true;
          if (announced) peer.notify("gateClose", [id]);
        },
      };
    },
  };
}

/**
 * The main thread's message sink (DKIM signing, then the spool): bytes go
 * over in transferred buffers, and `drain` waits while more than
 * {@link SINK_HIGH_WATER} bytes are not yet taken.
 */
export class RemoteSink implements MessageSink {
  readonly #peer: MainPeer;
  readonly #open = new Map<number, { inflight: number; wake: (() => void) | null }>();
  #next = 1;

  /** @param peer the channel to the main thread */
  constructor(peer: MainPeer) {
    this.#peer = peer;
  }

  /** The main thread took `bytes` of message `id`. */
  acknowledge(id: number, bytes: number): void {
    const entry = this.#open.get(id);
    if (!entry) return;
    entry.inflight -= bytes;
    if (entry.wake && entry.inflight <= SINK_LOW_WATER) {
      const wake = entry.wake;
      entry.wake = null;
      wake();
    }
  }

  begin(envelope: Envelope): SinkTransaction {
    const peer = this.#peer;
    const id = this.#next++;
    const entry: { inflight: number; wake: (() => void) | null } = { inflight: 0, wake: null };
    this.#open.set(id, entry);
    peer.notify("sinkBegin", [id, envelope]);
    const finish = () => {
      this.#open.delete(id);
      entry.wake?.();
      entry.wake = null;
    };
    return {
      write(bytes: Uint8Array): void {
        // A copy of its own, so the buffer can be moved rather than cloned (not
        // `slice`: on a node Buffer that is a view of the socket's memory).
        const copy = new Uint8Array(bytes);
        entry.inflight += copy.byteLength;
        peer.notify("sinkWrite", [id, copy], [copy.buffer]);
      },
      drain(): Promise<void> | undefined {
        if (entry.inflight <= SINK_HIGH_WATER) return undefined;
        return new Promise((resolve) => entry.wake = resolve);
      },
      commit: async (): Promise<SinkResult> => {
        try {
          return await peer.call("sinkCommit", id);
        } catch {
          return { reply: Replies.spoolFailure(), accepted: false };
        } finally {
          finish();
        }
      },
      abort: (reason: string): Promise<void> => {
        peer.notify("sinkAbort", [id, reason]);
        finish();
        return Promise.resolve();
      },
    };
  }
}
