/**
 * A small typed RPC over `postMessage`, both ways between the main thread and
 * a session worker: calls (answered with a value or an error) and notices
 * (fire and forget, in order with the calls). Each side names the methods it
 * serves as an interface; a call's arguments and result must survive the
 * structured clone.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/** The arguments of a served method. */
export type RpcArgs<T> = T extends (...args: infer A) => unknown ? A : never;
/** What a call of a served method resolves to. */
export type RpcResult<T> = T extends (...args: never[]) => infer R ? Awaited<R> : never;

/** The two ends of a message channel (a Worker, or the worker's global scope). */
export interface RpcEndpoint {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  removeEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

/** What one `postMessage` carries: the messages of one event-loop turn, in order. */
export interface RpcBatch {
  rpc: "batch";
  messages: RpcMessage[];
}

/** A message on the channel. */
export type RpcMessage =
  | { rpc: "call"; id: number; method: string; args: unknown[] }
  | { rpc: "notice"; method: string; args: unknown[] }
  | { rpc: "result"; id: number; value: unknown }
  | {
    rpc: "error";
    id: number;
    name: string;
    message: string;
    /** An errno-style `code` and a `port`, when the error had them (a failed bind). */
    code?: string;
    port?: number;
  };

/** An error thrown on the other side of a call, rethrown here with its name and message. */
export class RemoteError extends Error {
  /** The remote error's errno-style code (`EADDRINUSE`...), if it had one. */
  readonly code?: string;
  /** The port a failed bind named, if any. */
  readonly port?: number;

  /** @param name the remote error's name @param message its message @param extra code and port */
  constructor(name: string, message: string, extra: { code?: string; port?: number } = {}) {
    super(message);
    this.name = name;
    if (extra.code !== undefined) this.code = extra.code;
    if (extra.port !== undefined) this.port = extra.port;
  }
}

/** Thrown into calls still waiting when the peer is closed (the worker stopped or crashed). */
export class PeerClosedError extends Error {
  constructor() {
    super("the other thread stopped");
    this.name = "PeerClosedError";
  }
}

function isRpcBatch(data: unknown): data is RpcBatch {
  return typeof data === "object" && data !== null && (data as RpcBatch).rpc === "batch";
}

/**
 * One side of the channel: serves `Local` and calls `Remote`.
 *
 * @example
 * ```ts ignore
 * const peer = new RpcPeer<WorkerApi, MainApi>(worker, mainHandlers);
 * const result = await peer.call("reloadTls", snapshot);
 * peer.notify("shutdown", 1000);
 * ```
 */
export class RpcPeer<Remote, Local extends object> {
  readonly #endpoint: RpcEndpoint;
  readonly #local: Local;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  readonly #listener = (event: MessageEvent) => {
    if (!isRpcBatch(event.data) || this.#closed) return;
    for (const message of event.data.messages) this.#receive(message);
  };
  #nextId = 1;
  #closed = false;
  /**
   * Messages of this turn, sent together once the turn's I/O callbacks have
   * run (`setImmediate`): waking the other thread costs ~25 µs of CPU, a
   * message in a batch ~5.
   */
  #outbox: RpcMessage[] = [];
  #transfer: Transferable[] = [];
  #flushScheduled = false;
  readonly #flush = () => {
    this.#flushScheduled = false;
    if (this.#closed || this.#outbox.length === 0) return;
    const batch: RpcBatch = { rpc: "batch", messages: this.#outbox };
    const transfer = this.#transfer;
    this.#outbox = [];
    this.#transfer = [];
    try {
      this.#endpoint.postMessage(batch, transfer);
    } catch {
      // Something in the batch does not clone (a bug): send the rest, fail that call.
      for (const message of batch.messages) this.#postAlone(message, transfer);
    }
  };

  /** @param endpoint the channel @param local the methods served to the other side */
  constructor(endpoint: RpcEndpoint, local: Local) {
    this.#endpoint = endpoint;
    this.#local = local;
    endpoint.addEventListener("message", this.#listener);
  }

  /** Calls `method` on the other side; rejects with its error, or {@link PeerClosedError}. */
  call<M extends keyof Remote & string>(
    method: M,
    ...args: RpcArgs<Remote[M]>
  ): Promise<RpcResult<Remote[M]>> {
    if (this.#closed) return Promise.reject(new PeerClosedError());
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#pending.set(id, { resolve, reject });
    this.#post({ rpc: "call", id, method, args });
    return promise as Promise<RpcResult<Remote[M]>>;
  }

  /** Tells the other side something; no answer. `transfer` moves buffers instead of copying. */
  notify<M extends keyof Remote & string>(
    method: M,
    args: RpcArgs<Remote[M]>,
    transfer?: Transferable[],
  ): void {
    if (this.#closed) return;
    this.#post({ rpc: "notice", method, args }, transfer);
  }

  #post(message: RpcMessage, transfer?: Transferable[]): void {
    this.#outbox.push(message);
    if (transfer) this.#transfer.push(...transfer);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  /** Stops listening; waiting calls reject with {@link PeerClosedError}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#endpoint.removeEventListener("message", this.#listener);
    for (const { reject } of this.#pending.values()) reject(new PeerClosedError());
    this.#pending.clear();
  }

  #receive(data: RpcMessage): void {
    if (this.#closed) return;
    switch (data.rpc) {
      case "result":
      case "error": {
        const waiting = this.#pending.get(data.id);
        if (!waiting) return;
        this.#pending.delete(data.id);
        if (data.rpc === "result") waiting.resolve(data.value);
        else waiting.reject(new RemoteError(data.name, data.message, data));
        return;
      }
      case "notice":
        try {
          void Promise.resolve(this.#invoke(data.method, data.args)).catch(() => {});
        } catch {
          // A notice has nobody to tell; the handler logs what matters.
        }
        return;
      case "call":
        void this.#answer(data.id, data.method, data.args);
    }
  }

  #invoke(method: string, args: unknown[]): unknown {
    const handler = (this.#local as Record<string, unknown>)[method];
    if (typeof handler !== "function") throw new TypeError(`no RPC method ${method}`);
    return handler.apply(this.#local, args);
  }

  async #answer(id: number, method: string, args: unknown[]): Promise<void> {
    let reply: RpcMessage;
    try {
      reply = { rpc: "result", id, value: await this.#invoke(method, args) };
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      const { code, port } = err as { code?: unknown; port?: unknown };
      reply = {
        rpc: "error",
        id,
        name: err.name,
        message: err.message,
        ...(typeof code === "string" ? { code } : {}),
        ...(typeof port === "number" ? { port } : {}),
      };
    }
    if (this.#closed) return;
    this.#post(reply);
  }

  #postAlone(message: RpcMessage, transfer: Transferable[]): void {
    try {
      this.#endpoint.postMessage(
        { rpc: "batch", messages: [message] } satisfies RpcBatch,
        transfer,
      );
    } catch (error) {
      if (message.rpc !== "result") return;
      const failed: RpcMessage = {
        rpc: "error",
        id: message.id,
        name: "DataCloneError",
        message: String(error instanceof Error ? error.message : error),
      };
      this.#endpoint.postMessage({ rpc: "batch", messages: [failed] } satisfies RpcBatch);
    }
  }
}
