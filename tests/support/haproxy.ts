/**
 * A real HAProxy (Debian's `haproxy`, run in the foreground with `-db`) in
 * front of a test relay: each route is a TCP-mode frontend on a free
 * 127.0.0.1 port forwarding to a relay listener with `send-proxy`,
 * `send-proxy-v2` or `send-proxy-v2-ssl`, optionally terminating TLS itself.
 *
 * Also {@link startHeaderForwarder}: a tiny forwarder that sends a
 * hand-written PROXY header, for what HAProxy on loopback cannot produce (a
 * client address other than 127.0.0.1).
 *
 * @example
 * ```ts ignore
 * const proxy = await startHaproxy({
 *   routes: [{ name: "smtps", backendPort: relay.smtpsPort, server: "send-proxy-v2" }],
 * });
 * const [client, greeting] = await RawClient.open({ port: proxy.port("smtps"), ... });
 * await proxy.close();
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { freePort } from "./ports.ts";

/** One frontend → backend pair. */
export interface HaproxyRoute {
  /** Names the route (frontend `fe_<name>`); {@link Haproxy.port} takes it. */
  name: string;
  /** The relay listener's port on 127.0.0.1. */
  backendPort: number;
  /** More relay listeners (other nodes) behind the same frontend, balanced round robin. */
  moreBackendPorts?: number[];
  /** Options on the `server` line, e.g. `send-proxy-v2` or `send-proxy-v2-ssl`. */
  server: string;
  /** Terminate TLS on the frontend with this PEM file (certificate and key concatenated). */
  tlsPem?: string;
}

/** Options for {@link startHaproxy}. */
export interface HaproxyOptions {
  routes: HaproxyRoute[];
  /** Milliseconds to wait for HAProxy to bind; default 10000. */
  startTimeoutMs?: number;
}

/** A running HAProxy. */
export interface Haproxy {
  /** The frontend port of a route. */
  port(name: string): number;
  /** The generated configuration (for failure messages). */
  config: string;
  /** Stops HAProxy and removes its temp directory. */
  close(): Promise<void>;
}

/** Whether the `haproxy` binary is installed (tests skip cleanly without it). */
export async function haproxyAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("haproxy", {
      args: ["-v"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/** Writes the relay's certificate and key into one PEM file, as HAProxy's `crt` wants it. */
export async function haproxyPem(certDir: string, outDir: string): Promise<string> {
  const cert = await Deno.readTextFile(join(certDir, "server.crt"));
  const key = await Deno.readTextFile(join(certDir, "server.key"));
  const path = join(outDir, "haproxy.pem");
  await Deno.writeTextFile(path, `${cert.trimEnd()}\n${key.trimEnd()}\n`, { mode: 0o600 });
  return path;
}

function renderConfig(routes: HaproxyRoute[], ports: Map<string, number>, ready: number): string {
  const lines = [
    "global",
    "  nbthread 1",
    "  maxconn 256",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 30s",
    "  timeout server 30s",
    // Accepts and drops; startOnce waits until HAProxy itself holds it and every route port.
    "frontend ready",
    `  bind 127.0.0.1:${ready}`,
    "  tcp-request connection reject",
  ];
  for (const route of routes) {
    const tls = route.tlsPem ? ` ssl crt ${route.tlsPem}` : "";
    lines.push(
      `frontend fe_${route.name}`,
      `  bind 127.0.0.1:${ports.get(route.name)}${tls}`,
      `  default_backend be_${route.name}`,
      `backend be_${route.name}`,
      `  server relay 127.0.0.1:${route.backendPort} ${route.server}`,
    );
    if (route.moreBackendPorts?.length) {
      lines.push("  balance roundrobin");
      route.moreBackendPorts.forEach((port, i) => {
        lines.push(`  server relay${i + 2} 127.0.0.1:${port} ${route.server}`);
      });
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * Whether process `pid` itself listens on every one of `ports` (a port picked
 * free a moment ago may have been taken by another test meanwhile, so a
 * successful connect alone proves nothing): its socket inodes against the
 * LISTEN entries of /proc/net/tcp.
 */
async function listensOn(pid: number, ports: number[]): Promise<boolean> {
  const inodes = new Set<string>();
  try {
    for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
      const target = await Deno.readLink(`/proc/${pid}/fd/${entry.name}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) inodes.add(m[1]);
    }
  } catch {
    return false;
  }
  const listening = new Set<number>();
  for (const line of (await Deno.readTextFile("/proc/net/tcp")).split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 is the inode.
    if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) {
      listening.add(parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports.every((port) => listening.has(port));
}

/** Starts HAProxy with `options.routes`; retries with new ports if one was taken meanwhile. */
export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  const dir = await Deno.makeTempDir({ prefix: "relay-haproxy-" });
  try {
    for (let attempt = 1;; attempt++) {
      try {
        return await startOnce(dir, options);
      } catch (error) {
        if (attempt >= 4 || !/cannot bind|Address already in use/i.test(String(error))) throw error;
      }
    }
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

async function startOnce(dir: string, options: HaproxyOptions): Promise<Haproxy> {
  const ports = new Map(options.routes.map((route) => [route.name, freePort()]));
  const ready = freePort();
  const config = renderConfig(options.routes, ports, ready);
  const path = join(dir, "haproxy.cfg");
  await Deno.writeTextFile(path, config);
  const child = new Deno.Command("haproxy", {
    args: ["-f", path, "-db"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    await status;
    await pump;
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  while (!await listensOn(child.pid, [ready, ...ports.values()])) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not start:\n${stderr}\n--- config ---\n${config}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    config,
    port(name) {
      const port = ports.get(name);
      if (port === undefined) throw new Error(`no haproxy route ${name}`);
      return port;
    },
    async close() {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A running {@link startHeaderForwarder}. */
export interface HeaderForwarder {
  /** The port clients connect to on 127.0.0.1. */
  port: number;
  /** Stops accepting and closes every forwarded connection. */
  close(): Promise<void>;
}

/**
 * Forwards each connection to `targetPort`, sending `header` first in the
 * SAME write as the client's first bytes (for TLS: its ClientHello), so the
 * server must hand the bytes after the header on to TLS.
 */
export function startHeaderForwarder(targetPort: number, header: Uint8Array): HeaderForwarder {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const close = (conn: Deno.Conn) => {
    if (!conns.delete(conn)) return;
    try {
      conn.close();
    } catch { /* closed */ }
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, first?: Uint8Array) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      if (first) await writeAll(to, first);
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        await writeAll(to, buffer.subarray(0, n));
      }
    } catch { /* either side went away */ }
    close(from);
    close(to);
  };
  const serve = async (client: Deno.Conn) => {
    conns.add(client);
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      close(client);
      return;
    }
    conns.add(upstream);
    const buffer = new Uint8Array(64 * 1024);
    const n = await client.read(buffer).catch(() => null);
    if (n === null) {
      close(client);
      close(upstream);
      return;
    }
    const first = new Uint8Array(header.length + n);
    first.set(header);
    first.set(buffer.subarray(0, n), header.length);
    await Promise.all([pipe(client, upstream, first), pipe(upstream, client)]);
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      const task = serve(conn);
      tasks.add(task);
      void task.finally(() => tasks.delete(task));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
      for (const conn of [...conns]) close(conn);
      await Promise.all(tasks);
    },
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}
