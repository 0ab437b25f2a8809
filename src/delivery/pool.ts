/**
 * A pool of SMTP connections to one backend (Postfix's connection cache):
 * at most `size` open at once, reused for up to `maxMessagesPerConnection`
 * messages, checked with NOOP when taken after being idle a while, closed
 * with QUIT after `idleTimeoutMs` unused. Callers that find every connection
 * busy wait in line.
 *
 * After a failed connect the pool answers further `acquire` calls with the
 * same error for `downCacheMs`, so a queue full of messages for a dead
 * backend does not open one doomed connection per message.
 *
 * @example
 * ```ts ignore
 * const pool = new SmtpPool({ name: "backend", size: 4, connect: () => SmtpClient.connect(...) });
 * const lease = await pool.acquire();
 * try {
 *   await lease.client.send({ from, to, data, rset: lease.reused });
 *   lease.release();
 * } catch (error) {
 *   lease.release(false);
 * }
 * await pool.close();
 * ```
 *
 * @module
 */
import { log } from "../observability/logger.ts";
import type { SmtpClient } from "./smtp_client.ts";

const logger = log("delivery");

/** Options for {@linkcode SmtpPool}. */
export interface SmtpPoolOptions {
  /** Name for logs (the backend URL, never credentials). */
  name: string;
  /** Opens a ready connection: connected, TLS up, EHLO said, authenticated. */
  connect: () => Promise<SmtpClient>;
  /** Most connections open at once (connecting, busy and idle together). */
  size: number;
  /** Messages over one connection before it is closed (default 100). */
  maxMessagesPerConnection?: number;
  /** Idle time before a pooled connection is closed, ms (default 30 s). */
  idleTimeoutMs?: number;
  /** Idle time after which a connection is checked with NOOP before reuse, ms (default 2 s). */
  healthCheckAfterMs?: number;
  /** How long a failed connect is remembered and repeated to callers, ms (default 5 s). */
  downCacheMs?: number;
  /** The clock (default `Date.now`). */
  now?: () => number;
}

/** One borrowed connection; give it back with `release` exactly once. */
export interface PoolLease {
  /** The connection. */
  readonly client: SmtpClient;
  /** Whether it carried a message before (send RSET first). */
  readonly reused: boolean;
  /** Connection number within this pool, for logs. */
  readonly connectionId: number;
  /**
   * Returns the connection; `reusable: false` (or a closed client) closes it.
   * Counts one message against `maxMessagesPerConnection` when `sent`.
   */
  release(reusable?: boolean): void;
}

/** Counters, for tests and metrics. */
export interface PoolStats {
  /** Connections open now (connecting, busy or idle). */
  open: number;
  /** Idle connections. */
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
  /** Connections opened since the pool was created. */
  created: number;
  /** Idle sweeps run (each closes the connections idle past `idleTimeoutMs`). */
  sweeps: number;
}

interface Pooled {
  client: SmtpClient;
  id: number;
  uses: number;
  idleSince: number;
}

type Waiter = {
  resolve: (conn: Pooled | null) => void;
  reject: (error: Error) => void;
};

/** The connection pool of one backend. */
export class SmtpPool {
  #o: Required<SmtpPoolOptions>;
  #idle: Pooled[] = [];
  #waiters: Waiter[] = [];
  #open = 0;
  #created = 0;
  #sweeps = 0;
  #closed = false;
  #reaper: ReturnType<typeof setInterval> | undefined;
  #closing = new Set<Promise<unknown>>();
  #down: { until: number; error: Error } | null = null;

  /** Creates an empty pool; connections open on demand. */
  constructor(options: SmtpPoolOptions) {
    this.#o = {
      maxMessagesPerConnection: 100,
      idleTimeoutMs: 30_000,
      healthCheckAfterMs: 2_000,
      downCacheMs: 5_000,
      now: Date.now,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as Required<SmtpPoolOptions>;
    if (!(this.#o.size >= 1)) throw new RangeError("pool size must be at least 1");
  }

  /** Name for logs. */
  get name(): string {
    return this.#o.name;
  }

  /** Counters. */
  get stats(): PoolStats {
    return {
      open: this.#open,
      idle: this.#idle.length,
      waiting: this.#waiters.length,
      created: this.#created,
      sweeps: this.#sweeps,
    };
  }

  /**
   * Borrows a connection: an idle one (checked with NOOP if it idled past
   * `healthCheckAfterMs`), a new one if the pool has room, else the next one
   * released.
   *
   * @throws the connect error (an `SmtpError`), or when the pool is closed
   */
  async acquire(): Promise<PoolLease> {
    for (;;) {
      if (this.#closed) throw new Error(`pool ${this.#o.name} is closed`);
      const idle = this.#idle.pop();
      if (idle) {
        if (await this.#healthy(idle)) return this.#lease(idle);
        continue;
      }
      if (this.#open < this.#o.size) return this.#lease(await this.#connect());
      const handed = await new Promise<Pooled | null>((resolve, reject) => {
        this.#waiters.push({ resolve, reject });
      });
      // null: a slot was freed, loop to open a connection.
      if (handed) {
        if (await this.#healthy(handed)) return this.#lease(handed);
      }
    }
  }

  /** Closes every idle connection (QUIT) and refuses new work; busy ones close on release. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#reaper);
    this.#reaper = undefined;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new Error(`pool ${this.#o.name} is closed`));
    }
    for (const conn of this.#idle.splice(0)) this.#discard(conn, true);
    while (this.#closing.size > 0) await Promise.all(this.#closing);
  }

  async #connect(): Promise<Pooled> {
    const down = this.#down;
    if (down && this.#o.now() < down.until) throw down.error;
    this.#open++;
    try {
      const client = await this.#o.connect();
      this.#down = null;
      const conn = { client, id: ++this.#created, uses: 0, idleSince: this.#o.now() };
      logger.debug("{pool}: connection #{conn} open ({open}/{size})", {
        pool: this.#o.name,
        conn: conn.id,
        open: this.#open,
        size: this.#o.size,
      });
      return conn;
    } catch (error) {
      this.#open--;
      this.#down = { until: this.#o.now() + this.#o.downCacheMs, error: error as Error };
      this.#freeSlot();
      throw error;
    }
  }

  /** NOOP when the connection idled a while; a dead one is dropped. */
  async #healthy(conn: Pooled): Promise<boolean> {
    if (conn.client.closed) {
      this.#discard(conn, false);
      return false;
    }
    if (this.#o.now() - conn.client.lastActivity < this.#o.healthCheckAfterMs) return true;
    try {
      await conn.client.noop();
      return true;
    } catch (error) {
      logger.info("{pool}: connection #{conn} failed its NOOP check ({error}); replacing it", {
        pool: this.#o.name,
        conn: conn.id,
        error: error instanceof Error ? error.message : String(error),
      });
      this.#discard(conn, false);
      return false;
    }
  }

  #lease(conn: Pooled): PoolLease {
    let released = false;
    const reused = conn.uses > 0;
    return {
      client: conn.client,
      reused,
      connectionId: conn.id,
      release: (reusable = true) => {
        if (released) return;
        released = true;
        conn.uses++;
        this.#release(conn, reusable);
      },
    };
  }

  #release(conn: Pooled, reusable: boolean): void {
    if (
      !reusable || this.#closed || conn.client.closed ||
      conn.uses >= this.#o.maxMessagesPerConnection
    ) {
      this.#discard(conn, reusable && !conn.client.closed);
      return;
    }
    conn.idleSince = this.#o.now();
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve(conn);
      return;
    }
    this.#idle.push(conn);
    this.#startReaper();
  }

  /** Closes a connection (politely with QUIT when it is still in a sane state) and frees its slot. */
  #discard(conn: Pooled, quit: boolean): void {
    this.#open--;
    if (quit && !conn.client.closed) {
      const done: Promise<unknown> = conn.client.quit().finally(() => this.#closing.delete(done));
      this.#closing.add(done);
    } else {
      conn.client.close();
    }
    this.#freeSlot();
  }

  /** Lets the first waiter open a connection in the freed slot. */
  #freeSlot(): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(null);
  }

  #startReaper(): void {
    if (this.#reaper !== undefined) return;
    const every = Math.max(50, Math.min(this.#o.idleTimeoutMs / 2, 5_000));
    this.#reaper = setInterval(() => this.#reap(), every);
  }

  #reap(): void {
    this.#sweeps++;
    const now = this.#o.now();
    const keep: Pooled[] = [];
    for (const conn of this.#idle) {
      if (now - conn.idleSince >= this.#o.idleTimeoutMs || conn.client.closed) {
        logger.debug("{pool}: closing idle connection #{conn}", {
          pool: this.#o.name,
          conn: conn.id,
        });
        this.#discard(conn, true);
      } else {
        keep.push(conn);
      }
    }
    this.#idle = keep;
    if (this.#idle.length === 0) {
      clearInterval(this.#reaper);
      this.#reaper = undefined;
    }
  }
}
