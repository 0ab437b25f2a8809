/**
 * Logging cost: the relay's log calls with today's batched stderr sink
 * (`src/observability/log_sink.ts`) against the sink it replaced (one
 * synchronous stderr write per record), and, to split the cost, a sink that
 * only formats the JSON line (`format-only`) and one that does nothing
 * (`no-sink`: LogTape's own work), both marked immediate as the batched sink
 * is (LogTape hands them the record without copying it first, see
 * `markImmediate`), so the rows split one cost. Each runs in a child process whose
 * stderr is a pipe read (and discarded) by this one, as journald or a
 * container runtime would; the child reports its own CPU time.
 *
 * ```text
 * deno run --allow-all bench/log_bench.ts [--count 50000]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { jsonFormatter, log, setupLogging, teardownLogging } from "../src/observability/logger.ts";
import { markImmediate } from "../src/observability/log_sink.ts";
import { readCpuMs } from "./cpu.ts";

const SINKS = ["per-record", "batched", "format-only", "no-sink"] as const;
type SinkName = typeof SINKS[number];

/** The sink the relay had before: one synchronous write per record. */
function perRecordSink(record: LogRecord): void {
  Deno.stderr.writeSync(new TextEncoder().encode(jsonFormatter(record)));
}

async function child(sink: SinkName, count: number): Promise<void> {
  if (sink === "batched") {
    await setupLogging({ level: "info", format: "json" });
  } else {
    // format-only: the JSON line is built and thrown away; no-sink: LogTape's own cost alone.
    // Both are marked immediate, as the batched sink is, so LogTape's part is the same in each.
    const formatOnly = markImmediate((record: LogRecord) => void jsonFormatter(record));
    await configure({
      reset: true,
      sinks: {
        stderr: sink === "per-record" ? perRecordSink : formatOnly,
        none: markImmediate(() => {}),
      },
      loggers: [{
        category: ["relay"],
        lowestLevel: "info",
        sinks: [sink === "no-sink" ? "none" : "stderr"],
      }],
    });
  }
  const logger = log("smtp");
  const cpu0 = (await readCpuMs("self"))!;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    // A typical line: what every session logs when it ends.
    logger.info("disconnect from [{ip}] {counts}", {
      ip: "192.0.2.7",
      counts: "ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6",
      session: `s${i.toString(36)}`,
      port: "smtps",
      user: "alice@example.com",
      messages: 1,
    });
    // Let the event loop turn now and then, as a server's would.
    if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (sink === "batched") await teardownLogging();
  else await reset();
  const wallMs = performance.now() - t0;
  const cpuMs = (await readCpuMs("self"))! - cpu0;
  console.log(JSON.stringify({ sink, count, wallMs, cpuMs }));
}

async function parent(count: number): Promise<void> {
  console.log("sink         records  records/s  CPU µs/record");
  for (const sink of [...SINKS, ...SINKS]) { // twice, interleaved
    const proc = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL(import.meta.url).pathname,
        "--child",
        sink,
        "--count",
        String(count),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const drained = (async () => {
      for await (const _ of proc.stderr) { /* discard, as a log reader would after storing */ }
    })();
    const out = await new Response(proc.stdout).text();
    await drained;
    await proc.status;
    const r = JSON.parse(out.trim().split("\n").at(-1)!);
    console.log(
      `${r.sink.padEnd(11)}  ${String(r.count).padStart(7)}  ${
        (r.count / (r.wallMs / 1000)).toFixed(0).padStart(9)
      }  ${(r.cpuMs * 1000 / r.count).toFixed(1).padStart(13)}`,
    );
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: { count: { type: "string", default: "50000" }, child: { type: "string" } },
});
if (values.child) await child(values.child as SinkName, Number(values.count));
else await parent(Number(values.count));
