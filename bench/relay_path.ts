/**
 * The full-path scenario: client → relay (SMTPS or STARTTLS, AUTH) → fsync'd
 * spool → queue manager → pooled SMTP connections → a local backend sink.
 *
 * The relay is a real `main.ts serve` process (see `relay_process.ts`)
 * whose bench user's domain (`example.com`) is routed with
 * `[relay.routes."example.com"]` to an in-process SMTP sink, so the file
 * outbox of the generated config is never used. Each message carries an
 * `X-Bench-Seq` header; its latency runs from the start of its submission to
 * the moment the sink has it, so it includes queueing and delivery.
 *
 * ```ts ignore
 * import { formatRelayPathReport, runRelayPath } from "./relay_path.ts";
 *
 * const report = await runRelayPath({ count: 500, concurrency: 8, poolSize: 4 });
 * console.log(formatRelayPathReport(report));
 * ```
 *
 * @module
 */
import { SmtpSink } from "../tests/support/sink.ts";
import { readCpuMs } from "./cpu.ts";
import { percentile, runPooled } from "./load.ts";
import { relayTarget, startRelay } from "./relay_process.ts";
import { makeMessage, openSession, sendOn } from "./smtp_target.ts";

/** Options for {@linkcode runRelayPath}. */
export interface RelayPathOptions {
  /** Messages to send (default 500). */
  count?: number;
  /** Message size in bytes (default 2048). */
  size?: number;
  /** Client connections submitting side by side (default 8). */
  concurrency?: number;
  /** Backend connections of the relay's pool (`pool_size`, default 4). */
  poolSize?: number;
  /** `smtps` (implicit TLS) or `starttls` towards the relay (default smtps). */
  mode?: "smtps" | "starttls";
  /** Unmeasured messages first (default 10). */
  warmup?: number;
  /** The relay's `[log] level` (default `warning`). */
  logLevel?: string;
  /** Give up waiting for deliveries after this long (default 120 s). */
  timeoutMs?: number;
  /** Keep the relay's temp dir. */
  keepDir?: boolean;
}

/** What the full-path run measured. */
export interface RelayPathReport {
  scenario: "relay-path";
  mode: string;
  concurrency: number;
  poolSize: number;
  /** Messages accepted by the relay. */
  accepted: number;
  /** Submissions that failed. */
  failed: number;
  /** Messages the backend sink received (duplicates counted once). */
  delivered: number;
  /** Accepted messages per second, submission only. */
  acceptPerSecond: number;
  /** Delivered messages per second, from the first submission to the last delivery. */
  deliverPerSecond: number;
  /** Submission start → arrival at the backend, ms. */
  p50Ms: number;
  p99Ms: number;
  /** Relay CPU per delivered message (accept + spool + delivery), ms. */
  serverCpuMsPerMsg: number | null;
  /** Connections the backend saw, and the most at once (≤ pool size). */
  backendConnections: number;
  backendMaxOpen: number;
  errors: Record<string, number>;
}

/** Runs the scenario once (relay and sink started and stopped here). */
export async function runRelayPath(options: RelayPathOptions = {}): Promise<RelayPathReport> {
  const count = options.count ?? 500;
  const size = options.size ?? 2048;
  const concurrency = options.concurrency ?? 8;
  const poolSize = options.poolSize ?? 4;
  const mode = options.mode ?? "smtps";
  const warmup = options.warmup ?? 10;
  const sink = await SmtpSink.start();
  const arrived = new Map<number, number>();
  sink.dataReply = (message) => {
    const seq = /^X-Bench-Seq: (-?\d+)\r?$/m.exec(new TextDecoder().decode(message.data))?.[1];
    if (seq !== undefined && !arrived.has(Number(seq))) arrived.set(Number(seq), performance.now());
    return undefined;
  };
  const relay = await startRelay({
    keepDir: options.keepDir,
    logLevel: options.logLevel,
    extraToml: `
[relay.routes."example.com"]
url = "smtp://127.0.0.1:${sink.port}?tls=none"
pool_size = ${poolSize}
max_messages_per_connection = 1000000
`,
  });
  try {
    const target = relayTarget(relay, { mode });
    const template = new TextDecoder().decode(
      makeMessage({ from: target.from, to: target.to, size }),
    );
    const encoder = new TextEncoder();
    const started = new Map<number, number>();
    const submit = (first: number, total: number) =>
      runPooled({
        count: total,
        sessions: concurrency,
        open: () => openSession(target),
        task: async (client, index, onSession) => {
          const seq = first + index;
          started.set(seq, performance.now());
          if (onSession > 0) await client.rset();
          await sendOn(client, target, encoder.encode(`X-Bench-Seq: ${seq}\r\n${template}`));
        },
        close: async (client, broken) => {
          if (broken) client.close();
          else await client.quit();
        },
        maxFailures: Math.max(10, total / 10),
      });
    const waitDelivered = async (seqs: number[], deadline: number) => {
      while (seqs.some((s) => !arrived.has(s))) {
        if (performance.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    const timeoutMs = options.timeoutMs ?? 120_000;
    if (warmup > 0) {
      await submit(-warmup, warmup);
      await waitDelivered(
        Array.from({ length: warmup }, (_, i) => i - warmup),
        performance.now() + timeoutMs,
      );
    }
    const connections0 = sink.connections;
    const cpu0 = await readCpuMs(relay.pid);
    const t0 = performance.now();
    const result = await submit(0, count);
    const acceptedSeqs = [...started.keys()].filter((s) => s >= 0);
    await waitDelivered(acceptedSeqs, performance.now() + timeoutMs);
    const t1 = Math.max(
      t0,
      ...acceptedSeqs.map((s) => arrived.get(s) ?? 0),
    );
    const cpu1 = await readCpuMs(relay.pid);
    const latencies = acceptedSeqs
      .filter((s) => arrived.has(s))
      .map((s) => arrived.get(s)! - started.get(s)!);
    const delivered = latencies.length;
    return {
      scenario: "relay-path",
      mode,
      concurrency,
      poolSize,
      accepted: result.ok,
      failed: result.failed,
      delivered,
      acceptPerSecond: result.ok / (result.wallMs / 1000),
      deliverPerSecond: delivered / ((t1 - t0) / 1000),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      serverCpuMsPerMsg: cpu0 === null || cpu1 === null || delivered === 0
        ? null
        : (cpu1 - cpu0) / delivered,
      backendConnections: sink.connections - connections0,
      backendMaxOpen: sink.maxOpen,
      errors: Object.fromEntries(result.errors),
    };
  } catch (error) {
    console.error(`relay output (tail):\n${relay.output()}`);
    throw error;
  } finally {
    await relay.stop();
    await sink.close();
  }
}

/** Formats a report as a few aligned lines. */
export function formatRelayPathReport(r: RelayPathReport): string {
  const fixed = (n: number | null, digits: number) =>
    n === null || Number.isNaN(n) ? "-" : n.toFixed(digits);
  return [
    `relay-path (${r.mode}, ${r.concurrency} client connections, pool_size ${r.poolSize})`,
    `  accepted   ${r.accepted} (${r.failed} failed), ${fixed(r.acceptPerSecond, 0)} msg/s`,
    `  delivered  ${r.delivered}, ${fixed(r.deliverPerSecond, 0)} msg/s end to end`,
    `  latency    p50 ${fixed(r.p50Ms, 1)} ms, p99 ${fixed(r.p99Ms, 1)} ms (submit → backend)`,
    `  relay CPU  ${fixed(r.serverCpuMsPerMsg, 2)} ms/msg`,
    `  backend    ${r.backendConnections} new connections, at most ${r.backendMaxOpen} open`,
  ].join("\n");
}

if (import.meta.main) {
  const report = await runRelayPath({ count: Number(Deno.args[0] ?? 500) });
  console.log(formatRelayPathReport(report));
  Deno.exit(report.delivered === report.accepted && report.failed === 0 ? 0 : 1);
}
