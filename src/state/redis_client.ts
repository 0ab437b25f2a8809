/**
 * One connection to Redis or Valkey (npm `redis`, node-redis) shared by the
 * relay's Redis-backed stores: it connects in the background and reconnects
 * for ever, never queues commands while disconnected (they fail at once with
 * {@link StateUnavailableError}, so a limiter can fail open or closed instead
 * of hanging), and bounds every command by a timeout.
 *
 * Keys are prefixed here (`relay:` by default), so several relays, or other
 * applications, can share one Redis.
 *
 * @module
 */
import { createClient, ErrorReply } from "redis";
import { log } from "../observability/logger.ts";
import { StateUnavailableError } from "./state_store.ts";

const logger = log("state");

/** Options for {@link RedisConnection.open}. */
export interface RedisConnectionOptions {
  /** `redis://[user@]host:port/db` or `rediss://` (TLS). A password in the URL works too. */
  url: string;
  /** The password (`AUTH`), read from a file by the config loader; overrides one in the URL. */
  password?: string;
  /** PEM CA certificates to trust for `rediss://` (default: the system's). */
  caPem?: string;
  /** Prepended to every key. */
  prefix: string;
  /** Milliseconds a command may take before it counts as Redis being unavailable. */
  commandTimeoutMs: number;
}

/** A node-redis client, as far as our stores use it. */
export type RedisClient = ReturnType<typeof createClient>;

/** Errors Redis itself answers that mean "not available now", not "bad request". */
const UNAVAILABLE_REPLIES =
  /^(LOADING|BUSY|MASTERDOWN|READONLY|NOAUTH|WRONGPASS|CLUSTERDOWN|TRYAGAIN)/;

/** The shared Redis connection; see the module documentation. */
export class RedisConnection {
  readonly #client: RedisClient;
  readonly #timeoutMs: number;
  /** Prepended to every key. */
  readonly prefix: string;
  #down = false;
  #closed = false;
  readonly #connecting: Promise<void>;

  private constructor(options: RedisConnectionOptions) {
    this.prefix = options.prefix;
    this.#timeoutMs = options.commandTimeoutMs;
    const url = new URL(options.url);
    const tls = url.protocol === "rediss:";
    this.#client = createClient({
      url: options.url,
      ...(options.password !== undefined ? { password: options.password } : {}),
      disableOfflineQueue: true,
      // Bounds what waits on a Redis that hangs (each caller gives up after the timeout).
      commandsQueueMaxLength: 10_000,
      socket: {
        connectTimeout: Math.max(1000, options.commandTimeoutMs),
        // Reconnect for ever, backing off to once a second.
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000),
        ...(tls ? { tls: true as const, ...(options.caPem ? { ca: options.caPem } : {}) } : {}),
      },
    });
    this.#client.on("error", (error: unknown) => this.#unavailable(error));
    this.#client.on("ready", () => {
      if (this.#down) logger.warning("Redis is available again at {server}", this.#where());
      this.#down = false;
    });
    // connect() settles once connected; until then commands fail fast.
    this.#connecting = this.#client.connect().then(() => {}, (error: unknown) => {
      if (!this.#closed) this.#unavailable(error);
    });
  }

  /** Starts connecting (in the background: a Redis that is down does not stop the relay). */
  static open(options: RedisConnectionOptions): RedisConnection {
    return new RedisConnection(options);
  }

  /** Whether the connection is up and ready for commands. */
  get ready(): boolean {
    return this.#client.isReady;
  }

  /** Resolves `true` once connected, or `false` after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.#client.isReady) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.#client.off("ready", onReady);
        resolve(ready);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#client.on("ready", onReady);
    });
  }

  /**
   * Runs `command` on the client. Connection problems, timeouts and Redis
   * answers such as `LOADING` become {@link StateUnavailableError}; other error
   * replies (a wrong type, a script error) become a `TypeError`.
   */
  async run<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error("state store is closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A Redis that hangs (stopped, overloaded) must not hang AUTH: give up after the timeout.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([command(this.#client), timeout]);
    } catch (error) {
      if (error instanceof ErrorReply && !UNAVAILABLE_REPLIES.test(error.message)) {
        throw new TypeError(`Redis refused the command: ${error.message.split("\n")[0]}`);
      }
      this.#unavailable(error);
      throw new StateUnavailableError(
        `Redis unavailable: ${error instanceof Error ? error.message : String(error)}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs a Lua script (`EVAL`) on prefixed `keys`. */
  eval(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.run((client) =>
      client.eval(script, {
        keys: keys.map((key) => this.prefix + key),
        arguments: args.map(String),
      })
    );
  }

  /** Disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // QUIT after the pending replies, unless Redis hangs: then drop the connection.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), this.#timeoutMs);
    });
    try {
      const closing = this.#client.isReady ? this.#client.close() : Promise.resolve("late");
      if (await Promise.race([closing, late]) === "late" && this.#client.isOpen) {
        this.#client.destroy();
      }
    } catch {
      if (this.#client.isOpen) this.#client.destroy();
    } finally {
      clearTimeout(timer);
    }
    await this.#connecting;
  }

  #unavailable(error: unknown): void {
    if (this.#down || this.#closed) return;
    this.#down = true;
    logger.error("Redis unavailable at {server}: {error}", {
      ...this.#where(),
      error: error instanceof Error ? error.message : String(error),
    });
  }

  #where(): { server: string } {
    const options = this.#client.options;
    const url = new URL(options?.url ?? "redis://unknown");
    return { server: `${url.protocol}//${url.host}${url.pathname}` };
  }
}
