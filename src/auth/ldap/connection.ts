/**
 * LDAP connections: opening one (plain, StartTLS or LDAPS, with deadlines) and
 * a small pool that replaces dropped connections on the next use.
 *
 * Each `ldapts` Client here owns exactly one TCP connection: a second connect
 * attempt (which ldapts would make silently, unauthenticated, after the server
 * closed the socket) fails instead, so a search never runs anonymously on a
 * connection that was meant to be bound as the service account.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { Client, ResultCodeError } from "ldapts";

/** Where and how to connect. */
export interface LdapEndpoint {
  /** `ldap://host:port` or `ldaps://host:port`. */
  url: string;
  /** Upgrade an `ldap://` connection with StartTLS first. */
  starttls: boolean;
  /** PEM CA certificate(s) to trust; undefined: the system roots. */
  caPem?: string;
  /** Milliseconds for connect (TCP + TLS) and for each operation. */
  timeoutMs: number;
}

/** The directory could not be reached or did not answer: try again later. */
export class LdapUnavailableError extends Error {
  /** Creates the error; `cause` is kept for logs. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LdapUnavailableError";
  }
}

/** LDAP result codes that mean "the server cannot answer now", not "no". */
const TEMPORARY_RESULT_CODES: ReadonlySet<number> = new Set([
  1, // operationsError
  3, // timeLimitExceeded
  11, // adminLimitExceeded
  51, // busy
  52, // unavailable
  80, // other
]);

/** The LDAP result code of an error, or `undefined` for transport errors. */
export function resultCode(error: unknown): number | undefined {
  return error instanceof ResultCodeError ? error.code : undefined;
}

/**
 * Whether an error means the directory is unreachable or unwell (socket,
 * TLS, timeout, busy/unavailable) rather than a definite answer.
 */
export function isTemporaryError(error: unknown): boolean {
  if (error instanceof LdapUnavailableError) return true;
  const code = resultCode(error);
  return code === undefined || TEMPORARY_RESULT_CODES.has(code);
}

/** Rejects with `LdapUnavailableError` if `promise` has not settled within `ms`; calls `onExpire`. */
export async function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  onExpire: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onExpire();
      reject(new LdapUnavailableError(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function hostOf(url: string): string {
  const host = new URL(url).hostname;
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

function tlsOptionsFor(endpoint: LdapEndpoint): tls.ConnectionOptions {
  const host = hostOf(endpoint.url);
  return {
    host,
    // SNI must not carry an IP address; certificate checks still use `host`.
    servername: net.isIP(host) ? undefined : host,
    ca: endpoint.caPem ? [endpoint.caPem] : undefined,
    minVersion: "TLSv1.2",
  };
}

/**
 * Closes a client and its socket, ignoring errors: ldapts keeps a socket
 * open after a failed bind until `unbind()`, so every client ends here.
 */
export async function discardClient(client: Client): Promise<void> {
  const sockets = socketsOf.get(client) ?? new Set<net.Socket>();
  if (!lostClients.has(client)) {
    try {
      // After StartTLS, ldapts resolves unbind() only when the plain socket closes;
      // do not wait for a connection that can no longer say goodbye.
      await withDeadline(client.unbind(), 1000, "LDAP unbind", () => {});
    } catch {
      // The sockets are destroyed below whatever happened.
    }
  }
  for (const socket of sockets) socket.destroy();
}

/** Every socket made for a client (plain and TLS), so a discarded client leaves none open. */
const socketsOf = new WeakMap<Client, Set<net.Socket>>();

function remember(client: Client, socket: net.Socket): void {
  const set = socketsOf.get(client);
  if (set) set.add(socket);
  else socketsOf.set(client, new Set([socket]));
}

/**
 * Clients whose socket was closed without ldapts noticing: after StartTLS,
 * ldapts listens for "close" only on the plain socket underneath, so a server
 * that closes an idle TLS connection leaves the client "connected" until an
 * operation times out. The TLS socket's own close marks it here.
 */
const lostClients = new WeakSet<Client>();

/** Whether a client's connection is still open (as far as anyone can tell without I/O). */
export function isClientAlive(client: Client): boolean {
  return client.isConnected && !lostClients.has(client);
}

/**
 * Opens one connection: TCP (or TLS for `ldaps://`), then StartTLS when asked,
 * all within `timeoutMs`. `bind` runs on it before it is returned (the
 * service account), if given. Throws `LdapUnavailableError` for transport
 * failures and passes LDAP result errors (such as a rejected bind) through.
 */
export async function openClient(
  endpoint: LdapEndpoint,
  bind?: { dn: string; password: string },
): Promise<Client> {
  const secure = endpoint.url.toLowerCase().startsWith("ldaps:");
  let connects = 0;
  // deno-lint-ignore prefer-const
  let client: Client;
  const once = <F extends (...args: never[]) => net.Socket>(connect: F): F =>
    ((...args: Parameters<F>) => {
      connects += 1;
      if (connects > 1) throw new LdapUnavailableError("LDAP connection was closed");
      const socket = connect(...args);
      remember(client, socket);
      return socket;
    }) as F;
  const watched = ((...args: Parameters<typeof tls.connect>) => {
    const socket = tls.connect(...args);
    remember(client, socket);
    const lost = () => lostClients.add(client);
    socket.once("end", lost);
    socket.once("close", lost);
    return socket;
  }) as typeof tls.connect;
  client = new Client({
    url: endpoint.url,
    timeout: endpoint.timeoutMs,
    connectTimeout: endpoint.timeoutMs,
    tlsOptions: secure ? tlsOptionsFor(endpoint) : undefined,
    createConnection: secure ? undefined : once(net.connect),
    createSecureConnection: secure ? once(watched) : watched,
  });
  try {
    await withDeadline(
      (async () => {
        if (endpoint.starttls && !secure) {
          await client.startTLS(tlsOptionsFor(endpoint));
        }
        // Without a bind, the plain connection opens on the first operation.
        if (bind) await client.bind(bind.dn, bind.password);
      })(),
      endpoint.timeoutMs * 2,
      "LDAP connect",
      () => void discardClient(client),
    );
    return client;
  } catch (error) {
    await discardClient(client);
    if (error instanceof ResultCodeError || error instanceof LdapUnavailableError) throw error;
    throw new LdapUnavailableError(`cannot connect to ${endpoint.url}: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** A short, secret-free description of an error for logs. */
export function describe(error: unknown): string {
  if (error instanceof ResultCodeError) return `LDAP result ${error.code} (${error.name})`;
  if (error instanceof Error) return error.message.split("\n")[0];
  return String(error);
}

/** Options for {@linkcode LdapPool}. */
export interface LdapPoolOptions {
  /** Most connections open at once. */
  size: number;
  /** Opens a ready connection (connected, TLS done, bound as needed). */
  open: () => Promise<Client>;
  /** Whether an idle connection can still be used (checked before each use). */
  usable?: (client: Client) => boolean;
}

/**
 * A bounded set of reusable connections. `use()` lends one to a callback; a
 * connection that was closed (server restart, idle timeout, a firewall) is
 * replaced by a fresh one, and a callback that failed on a reused connection
 * with a transport error is retried once on a fresh connection — so a dead
 * socket costs one retry, never an error until restart.
 */
export class LdapPool {
  #options: LdapPoolOptions;
  #idle: Client[] = [];
  #open = 0;
  #waiters: Array<() => void> = [];
  #closed = false;

  /** Creates an empty pool; connections are opened on demand. */
  constructor(options: LdapPoolOptions) {
    this.#options = options;
  }

  /** Connections open now (idle and lent). */
  get openConnections(): number {
    return this.#open;
  }

  /** Runs `fn` with a connection from the pool. */
  async use<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      const { client, fresh } = await this.#acquire();
      try {
        const result = await fn(client);
        this.#release(client);
        return result;
      } catch (error) {
        if (resultCode(error) !== undefined) {
          // A definite LDAP answer: never retried; the connection is kept if still open.
          if (isClientAlive(client)) this.#release(client);
          else await this.#drop(client);
          throw error;
        }
        await this.#drop(client);
        if (fresh || attempt > 0 || this.#closed) throw error;
        // One dead connection usually means all of them (server restart): retry on a new one.
        await this.#dropIdle();
      }
    }
  }

  /** Closes every idle connection; lent ones close when returned. */
  async close(): Promise<void> {
    this.#closed = true;
    const idle = this.#idle.splice(0);
    this.#open -= idle.length;
    for (const wake of this.#waiters.splice(0)) wake();
    await Promise.all(idle.map(discardClient));
  }

  async #acquire(): Promise<{ client: Client; fresh: boolean }> {
    while (true) {
      if (this.#closed) throw new LdapUnavailableError("LDAP pool is closed");
      const idle = this.#idle.pop();
      if (idle) {
        if (isClientAlive(idle) && (this.#options.usable?.(idle) ?? true)) {
          return { client: idle, fresh: false };
        }
        await this.#drop(idle);
        continue;
      }
      if (this.#open < this.#options.size) {
        this.#open += 1;
        try {
          return { client: await this.#options.open(), fresh: true };
        } catch (error) {
          this.#open -= 1;
          this.#wakeOne();
          throw error;
        }
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #release(client: Client): void {
    if (this.#closed) {
      this.#open -= 1;
      void discardClient(client);
      return;
    }
    this.#idle.push(client);
    this.#wakeOne();
  }

  async #drop(client: Client): Promise<void> {
    this.#open -= 1;
    this.#wakeOne();
    await discardClient(client);
  }

  async #dropIdle(): Promise<void> {
    const idle = this.#idle.splice(0);
    this.#open -= idle.length;
    for (const _ of idle) this.#wakeOne();
    await Promise.all(idle.map(discardClient));
  }

  #wakeOne(): void {
    this.#waiters.shift()?.();
  }
}
