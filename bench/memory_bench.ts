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
 * ```
 *
 * Configs: `default` runs what an empty config enables (the embedded OAuth2
 * server included); `minimal` turns the OAuth2 server off.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { SmtpClient } from "../src/delivery/smtp_client.ts";
import { openSession } from "./smtp_target.ts";
import { type RelayProcess, relayTarget, startRelay } from "./relay_process.ts";

/** One config's figures. */
export interface MemoryRow {
  config: string;
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

/** Waits until two readings 500 ms apart differ by less than 0.5% (at most 15 s); KiB. */
async function settledRss(pid: number): Promise<number> {
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

/** Opens `count` idle connections, `parallel` at a time. */
async function openIdle(
  relay: RelayProcess,
  kind: "smtps" | "starttls",
  count: number,
  parallel = 50,
): Promise<SmtpClient[]> {
  const target = relayTarget(relay, { mode: kind });
  const clients: SmtpClient[] = [];
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      clients.push(
        await SmtpClient.connect({
          host: target.host,
          port: target.port,
          security: target.security,
          servername: target.servername,
          caCerts: target.caCerts,
          ehloName: "bench.localhost",
        }),
      );
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
): Promise<MemoryRow> {
  const relay = await startRelay({
    oauth: config === "default",
    admin: true,
  });
  try {
    await warmHashWorkers(relay, workers);
    const startRss = await settledRss(relay.pid);
    const startHeap = await heapUsed(relay);
    const row: MemoryRow = {
      config,
      startRssMib: round(startRss / 1024),
      startHeapMib: startHeap === null ? null : round(startHeap / 2 ** 20),
      startThreads: await procStatus(relay.pid, "Threads"),
      idle: [],
    };
    for (const kind of kinds) {
      for (const count of counts) {
        const before = await settledRss(relay.pid);
        const heapBefore = await heapUsed(relay);
        const clients = await openIdle(relay, kind, count);
        const after = await settledRss(relay.pid);
        const heapAfter = await heapUsed(relay);
        row.idle.push({
          kind,
          connections: count,
          rssKibPerConnection: round((after - before) / count),
          heapKibPerConnection: heapBefore === null || heapAfter === null
            ? null
            : round((heapAfter - heapBefore) / 1024 / count),
        });
        for (const client of clients) client.close();
        // Let the relay see every close before the next measurement.
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    return row;
  } catch (error) {
    console.error(relay.output());
    throw error;
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
    `${row.config}: start RSS ${row.startRssMib} MiB${heap}, ${row.startThreads} threads`,
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
    },
  });
  const counts = values.counts.split(",").map(Number);
  const kinds = values.kinds.split(",") as ("smtps" | "starttls")[];
  const rows: MemoryRow[] = [];
  for (const config of values.configs.split(",")) {
    const row = await measureConfig(config, counts, kinds, Number(values.workers));
    rows.push(row);
    if (!values.json) printRow(row);
  }
  if (values.json) console.log(JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
}
