/**
 * What the relay costs in memory: its resident set at start (after the
 * password-hashing workers are up) and per idle TLS connection.
 *
 * For each config it starts `main.ts serve` as a child (bench/relay_process.ts),
 * logs in `auth.workers` times at once so every hashing worker is running, waits
 * for the RSS to settle and reads it from `/proc/<pid>/status` (VmRSS), with the
 * JS heap from the relay's own `/metrics` (prom-client's `nodejs_heap_*`). Then
 * it opens N idle TLS connections from this process (SMTPS after the greeting
 * and EHLO; submission after STARTTLS and the second EHLO), waits for the RSS
 * to settle again and reports (after − before) / N.
 *
 * ```sh
 * deno task bench:memory                       # default and minimal config, N = 1000 and 5000
 * deno task bench:memory --counts 200 --json   # quicker, machine-readable
 * deno task bench:memory --floor               # also: bare node:tls and Deno.listenTls servers
 * deno task bench:memory --heap --counts 1000  # also: what one connection adds to the JS heap
 * deno task bench:memory --gc --floor          # every RSS reading after a full collection
 * ```
 *
 * `--floor` runs bench/tls_floor_server.ts (handshake, greeting, hold) the same
 * way, as the floor of each TLS stack. `--heap` starts the relay with
 * `--inspect`, takes a heap snapshot (after a collection) before and after
 * opening the connections, and lists the object kinds that grew, per
 * connection: the attribution the RSS figures cannot give.
 *
 * `--gc` starts the relay and the floor servers with `--inspect` and has V8
 * run a full collection before every RSS reading. Without it the figures
 * include garbage from the handshakes and sessions that V8 has not collected
 * yet (it does when idle, tens of seconds later, or under load): at N = 1000
 * that is most of what the relay shows above the `node:tls` floor.
 *
 * Configs: `default` runs what an empty config enables (the embedded OAuth2
 * server included); `minimal` turns the OAuth2 server off.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { SmtpClient } from "../src/delivery/smtp_client.ts";
import { openSession } from "./smtp_target.ts";
import { freePort, type RelayProcess, relayTarget, startRelay } from "./relay_process.ts";
import { makeTestCertificates } from "../src/delivery/_smtp_test_server.ts";
import { devtools } from "./devtools.ts";

/** One config's figures. */
export interface MemoryRow {
  config: string;
  /** RSS once listening, before any login (no hashing worker yet), MiB. */
  listeningRssMib: number;
  /** Threads then. */
  listeningThreads: number;
  /** RSS at start with the hashing workers up, MiB. */
  startRssMib: number;
  /** JS heap used at start, MiB (from the relay's /metrics). */
  startHeapMib: number | null;
  /** Threads of the relay process at start (each Worker adds some). */
  startThreads: number;
  /** Per idle connection, by kind and count. */
  idle: IdleRow[];
}

/** The cost of N idle connections of one kind. */
export interface IdleRow {
  kind: "smtps" | "starttls";
  connections: number;
  /** (RSS after − RSS before) / N, KiB. */
  rssKibPerConnection: number;
  /** (heap used after − before) / N, KiB; null without /metrics. */
  heapKibPerConnection: number | null;
}

/** Reads a `/proc/<pid>/status` field in KiB (`VmRSS`) or as a number (`Threads`). */
export async function procStatus(pid: number, field: string): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = text.match(new RegExp(`^${field}:\\s+(\\d+)`, "m"));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

/**
 * Waits until two readings 500 ms apart differ by less than 0.5% (at most
 * 15 s); KiB. With `collect`, a full collection runs first.
 */
async function settledRss(pid: number, collect?: () => Promise<void>): Promise<number> {
  await collect?.();
  let last = await procStatus(pid, "VmRSS");
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await procStatus(pid, "VmRSS");
    if (Math.abs(now - last) < last * 0.005) return now;
    last = now;
  }
  return last;
}

/** The relay's JS heap in use, bytes, from its `/metrics`; null when unavailable. */
async function heapUsed(relay: RelayProcess): Promise<number | null> {
  if (!relay.adminUrl) return null;
  const response = await fetch(`${relay.adminUrl}/metrics`);
  const text = await response.text();
  const match = text.match(/^relay_nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)/m);
  return match ? Number(match[1]) : null;
}

/** A full garbage collection in a process started with `--inspect=127.0.0.1:<port>`. */
async function collector(port: number): Promise<{ collect(): Promise<void>; close(): void }> {
  const inspector = await devtools(port);
  return {
    async collect() {
      // Twice: objects freed by the first one's finalizers go in the second.
      await inspector.call("HeapProfiler.collectGarbage");
      await inspector.call("HeapProfiler.collectGarbage");
    },
    close: () => inspector.close(),
  };
}

/** `--inspect` flags for a child when `gc`, and the port they name. */
function inspectFlags(gc: boolean): { port: number; flags: string[] } {
  const port = gc ? freePort() : 0;
  return { port, flags: gc ? [`--inspect=127.0.0.1:${port}`] : [] };
}

/** Opens `count` idle connections, `parallel` at a time. */
async function openIdle(
  relay: RelayProcess,
  kind: "smtps" | "starttls",
  count: number,
  parallel = 50,
): Promise<SmtpClient[]> {
  // No credentials: connect, EHLO (and STARTTLS, EHLO), no AUTH.
  const target = {
    ...relayTarget(relay, { mode: kind }),
    username: undefined,
    password: undefined,
  };
  const clients: SmtpClient[] = [];
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      clients.push(await openSession(target));
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  return clients;
}

/** Brings every hashing worker up: `workers` logins at once. */
async function warmHashWorkers(relay: RelayProcess, workers: number): Promise<void> {
  const target = relayTarget(relay);
  const sessions = await Promise.all(Array.from({ length: workers }, () => openSession(target)));
  for (const session of sessions) session.close();
}

/** Measures one config. */
export async function measureConfig(
  config: string,
  counts: number[],
  kinds: ("smtps" | "starttls")[],
  workers: number,
  gc = false,
): Promise<MemoryRow> {
  // A fresh relay for every measurement: memory freed by closed connections is
  // reused by the next ones without the RSS going down, so a second measurement
  // in the same process would read near zero.
  let row: MemoryRow | null = null;
  const idle: IdleRow[] = [];
  for (const kind of [null, ...kinds]) {
    for (const count of kind === null ? [0] : counts) {
      const inspect = inspectFlags(gc);
      const relay = await startRelay({
        oauth: config === "default",
        admin: true,
        denoFlags: inspect.flags,
      });
      let clients: SmtpClient[] = [];
      const gcs = gc ? await collector(inspect.port) : null;
      try {
        const listeningRss = await settledRss(relay.pid, gcs?.collect);
        const listeningThreads = await procStatus(relay.pid, "Threads");
        await warmHashWorkers(relay, workers);
        const before = await settledRss(relay.pid, gcs?.collect);
        const heapBefore = await heapUsed(relay);
        if (kind === null) {
          row = {
            config,
            listeningRssMib: round(listeningRss / 1024),
            listeningThreads,
            startRssMib: round(before / 1024),
            startHeapMib: heapBefore === null ? null : round(heapBefore / 2 ** 20),
            startThreads: await procStatus(relay.pid, "Threads"),
            idle,
          };
          continue;
        }
        clients = await openIdle(relay, kind, count);
        const after = await settledRss(relay.pid, gcs?.collect);
        const heapAfter = await heapUsed(relay);
        idle.push({
          kind,
          connections: count,
          rssKibPerConnection: round((after - before) / count),
          heapKibPerConnection: heapBefore === null || heapAfter === null
            ? null
            : round((heapAfter - heapBefore) / 1024 / count),
        });
      } catch (error) {
        console.error(relay.output());
        throw error;
      } finally {
        gcs?.close();
        for (const client of clients) client.close();
        await relay.stop();
      }
    }
  }
  return row!;
}

/** (RSS after − before) / N of a bare TLS server (bench/tls_floor_server.ts), KiB. */
export async function measureFloor(
  mode: "node" | "deno",
  count: number,
  gc = false,
): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "relay_floor_" });
  const port = freePort();
  const certs = await makeTestCertificates(dir);
  const server = new URL("./tls_floor_server.ts", import.meta.url).pathname;
  const inspect = inspectFlags(gc);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...inspect.flags,
      server,
      mode,
      String(port),
      certs.certPath,
      certs.keyPath,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const conns: Deno.TlsConn[] = [];
  let gcs: Awaited<ReturnType<typeof collector>> | null = null;
  try {
    const connect = async () => {
      const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [certs.caCert] });
      await conn.read(new Uint8Array(64)); // the greeting
      return conn;
    };
    await until(async () => {
      try {
        (await connect()).close();
        return true;
      } catch {
        return false;
      }
    });
    gcs = gc ? await collector(inspect.port) : null;
    const before = await settledRss(child.pid, gcs?.collect);
    for (let i = 0; i < count; i += 50) {
      conns.push(...await Promise.all(Array.from({ length: Math.min(50, count - i) }, connect)));
    }
    return round((await settledRss(child.pid, gcs?.collect) - before) / count);
  } finally {
    gcs?.close();
    for (const conn of conns) conn.close();
    child.kill();
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

async function until(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!await check()) {
    if (performance.now() > deadline) throw new Error("the floor server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Bytes and objects one connection adds to the JS heap, by node type and name. */
export interface HeapGrowth {
  kind: string;
  bytesPerConnection: number;
  objectsPerConnection: number;
}

/** The relay's inspector, for heap snapshots. */
async function inspect(port: number) {
  let chunks: string[] = [];
  const inspector = await devtools(port, (method, params) => {
    if (method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(params.chunk as string);
  });
  return {
    /** Object kinds (type:name) → [count, self bytes], after a full collection. */
    async snapshot(): Promise<Map<string, [number, number]>> {
      chunks = [];
      await inspector.call("HeapProfiler.collectGarbage");
      await inspector.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      const heap = JSON.parse(chunks.join(""));
      const fields: string[] = heap.snapshot.meta.node_fields;
      const types: string[] = heap.snapshot.meta.node_types[0];
      const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
      const kinds = new Map<string, [number, number]>();
      for (let i = 0; i < heap.nodes.length; i += fields.length) {
        const type = types[heap.nodes[i + typeAt]];
        const name = type.includes("string") ? "" : heap.strings[heap.nodes[i + nameAt]];
        const key = `${type}:${name.slice(0, 60)}`;
        const entry = kinds.get(key) ?? [0, 0];
        entry[0]++;
        entry[1] += heap.nodes[i + sizeAt];
        kinds.set(key, entry);
      }
      return kinds;
    },
    close: () => inspector.close(),
  };
}

/** What N idle connections of one kind add to the relay's JS heap, largest first. */
export async function measureHeap(
  kind: "smtps" | "starttls",
  count: number,
): Promise<{ totalKibPerConnection: number; top: HeapGrowth[] }> {
  const port = freePort();
  const relay = await startRelay({ denoFlags: [`--inspect=127.0.0.1:${port}`] });
  try {
    const inspector = await inspect(port);
    try {
      const before = await inspector.snapshot();
      const clients = await openIdle(relay, kind, count);
      const after = await inspector.snapshot();
      for (const client of clients) client.close();
      const growth: HeapGrowth[] = [];
      let total = 0;
      for (const [key, [objects, bytes]] of after) {
        const [objectsBefore, bytesBefore] = before.get(key) ?? [0, 0];
        if (bytes <= bytesBefore) continue;
        total += bytes - bytesBefore;
        growth.push({
          kind: key,
          bytesPerConnection: Math.round((bytes - bytesBefore) / count),
          objectsPerConnection: round((objects - objectsBefore) / count),
        });
      }
      growth.sort((a, b) => b.bytesPerConnection - a.bytesPerConnection);
      return { totalKibPerConnection: round(total / 1024 / count), top: growth.slice(0, 25) };
    } finally {
      inspector.close();
    }
  } finally {
    await relay.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function printRow(row: MemoryRow): void {
  const heap = row.startHeapMib === null ? "" : `, JS heap ${row.startHeapMib} MiB`;
  console.log(
    `${row.config}: listening ${row.listeningRssMib} MiB (${row.listeningThreads} threads); ` +
      `start with hash workers up ${row.startRssMib} MiB${heap}, ${row.startThreads} threads`,
  );
  for (const idle of row.idle) {
    const heapPart = idle.heapKibPerConnection === null
      ? ""
      : ` (JS heap ${idle.heapKibPerConnection} KiB)`;
    console.log(
      `  ${idle.kind.padEnd(8)} ${String(idle.connections).padStart(5)} idle: ` +
        `${idle.rssKibPerConnection} KiB RSS per connection${heapPart}`,
    );
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      configs: { type: "string", default: "default,minimal" },
      counts: { type: "string", default: "1000,5000" },
      kinds: { type: "string", default: "smtps,starttls" },
      workers: { type: "string", default: "2" },
      json: { type: "boolean", default: false },
      floor: { type: "boolean", default: false },
      heap: { type: "boolean", default: false },
      gc: { type: "boolean", default: false },
    },
  });
  const counts = values.counts.split(",").map(Number);
  const kinds = values.kinds.split(",") as ("smtps" | "starttls")[];
  const rows: MemoryRow[] = [];
  if (values.gc && !values.json) console.log("every RSS reading after a full collection (--gc)");
  for (const config of values.configs.split(",")) {
    const row = await measureConfig(config, counts, kinds, Number(values.workers), values.gc);
    rows.push(row);
    if (!values.json) printRow(row);
  }
  const floor: { mode: string; connections: number; rssKibPerConnection: number }[] = [];
  if (values.floor) {
    for (const mode of ["node", "deno"] as const) {
      for (const count of counts) {
        const rssKibPerConnection = await measureFloor(mode, count, values.gc);
        floor.push({ mode, connections: count, rssKibPerConnection });
        if (!values.json) {
          const what = mode === "node" ? "node:tls TLSSocket" : "Deno.listenTls   ";
          console.log(
            `floor ${what} ${
              String(count).padStart(5)
            } idle: ${rssKibPerConnection} KiB RSS per connection`,
          );
        }
      }
    }
  }
  const heap: { kind: string; connections: number; totalKibPerConnection: number }[] = [];
  if (values.heap) {
    for (const kind of kinds) {
      const result = await measureHeap(kind, counts[0]);
      heap.push({ kind, connections: counts[0], ...result });
      if (!values.json) {
        console.log(
          `${kind}: JS heap after a collection, ${result.totalKibPerConnection} KiB per connection:`,
        );
        for (const item of result.top) {
          console.log(
            `  ${String(item.bytesPerConnection).padStart(6)} B ${
              String(item.objectsPerConnection).padStart(5)
            } objects  ${item.kind}`,
          );
        }
      }
    }
  }
  if (values.json) {
    const date = new Date().toISOString();
    console.log(JSON.stringify({ date, gc: values.gc, rows, floor, heap }, null, 2));
  }
}
