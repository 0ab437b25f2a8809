/**
 * Where the relay's main thread spends its time during one bench scenario,
 * by JavaScript function: the relay runs with `--inspect`, V8's sampling
 * profiler (Chrome DevTools protocol `Profiler`) records the measured run,
 * and the functions with the most self time are printed, then the relay's
 * own source files by inclusive time. `perf` (bench/profile_pooled.ts) sees
 * every thread and the kernel but cannot name functions inside the stripped
 * `deno` binary; this sees the main thread only, but names the op or library
 * function that JavaScript called (TLS writes, file ops, hashing).
 *
 * ```text
 * deno run --allow-all bench/cpu_profile.ts [--scenario pooled|concurrent|sequential]
 *   [--count 4000] [--top 25] [--json] [--callers op_write]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runScenario, type Scenario, SCENARIOS } from "./bench.ts";
import { freePort, relayTarget, startRelay } from "./relay_process.ts";
import { startSmtpSink } from "./smtp_sink_backend.ts";
import { devtools } from "./devtools.ts";

/** One node of a V8 `.cpuprofile`. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** A V8 CPU profile (`Profiler.stop`). */
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time of one function, as a share of all samples. */
export interface FunctionTime {
  name: string;
  where: string;
  selfPercent: number;
}

/** Sums a profile's samples by function (self time) and by source file of ours (inclusive). */
export function summarize(
  profile: CpuProfile,
  root = "/src/",
  callersOf?: string,
): {
  functions: FunctionTime[];
  files: { file: string; inclusivePercent: number }[];
  callers: { stack: string; percent: number }[];
} {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, FunctionTime & { samples: number }>();
  const files = new Map<string, number>();
  const callers = new Map<string, number>();
  const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  for (const id of profile.samples) {
    const node = byId.get(id)!;
    const frame = node.callFrame;
    const key = `${frame.functionName}\0${frame.url}:${frame.lineNumber}`;
    const fn = self.get(key) ?? {
      name: frame.functionName || "(anonymous)",
      where: `${shortUrl(frame.url)}:${frame.lineNumber + 1}`,
      selfPercent: 0,
      samples: 0,
    };
    fn.samples++;
    self.set(key, fn);
    // Inclusive per file: each of our files on the stack counts once per sample.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      const i = url.indexOf(root);
      if (i !== -1) seen.add(url.slice(i + 1));
    }
    for (const file of seen) count(files, file);
    if (callersOf !== undefined && frame.functionName === callersOf) {
      // The nearest four named frames above it.
      const stack: string[] = [];
      for (let at = parent.get(id); at !== undefined && stack.length < 4; at = parent.get(at)) {
        const f = byId.get(at)!.callFrame;
        if (f.functionName) stack.push(`${f.functionName} ${shortUrl(f.url)}:${f.lineNumber + 1}`);
      }
      count(callers, stack.join(" < "));
    }
  }
  const total = profile.samples.length || 1;
  const percent = (n: number) => Math.round((n / total) * 1000) / 10;
  return {
    functions: [...self.values()].sort((a, b) => b.samples - a.samples).map((f) => ({
      name: f.name,
      where: f.where,
      selfPercent: percent(f.samples),
    })),
    files: [...files].sort((a, b) => b[1] - a[1]).map(([file, n]) => ({
      file,
      inclusivePercent: percent(n),
    })),
    callers: [...callers].sort((a, b) => b[1] - a[1]).map(([stack, n]) => ({
      stack,
      percent: percent(n),
    })),
  };
}

function shortUrl(url: string): string {
  const npm = url.indexOf("node_modules/");
  if (npm !== -1) return url.slice(npm + "node_modules/".length);
  const src = url.lastIndexOf("/src/");
  if (src !== -1) return url.slice(src + 1);
  return url.replace(/^ext:/, "");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      scenario: { type: "string", default: "pooled" },
      count: { type: "string", default: "4000" },
      top: { type: "string", default: "25" },
      json: { type: "boolean", default: false },
      callers: { type: "string" },
    },
  });
  const scenario = values.scenario as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new Error(`--scenario: one of ${SCENARIOS.join(", ")}`);
  const inspectPort = freePort();
  const sink = await startSmtpSink();
  const relay = await startRelay({
    relayUrl: `smtp://127.0.0.1:${sink.port}?tls=none`,
    logLevel: "info",
    denoFlags: [`--inspect=127.0.0.1:${inspectPort}`],
  });
  try {
    const target = relayTarget(relay);
    const settle = async () => {
      while ((await relay.spooled()) > 0) await new Promise((r) => setTimeout(r, 20));
    };
    const run = (count: number) =>
      runScenario({
        scenario,
        mode: "smtps",
        target,
        count,
        size: 1024,
        concurrency: 12,
        warmup: 0,
        serverPid: relay.pid,
        settle,
      });
    await run(Math.min(1000, Number(values.count)));
    const inspector = await devtools(inspectPort);
    try {
      await inspector.call("Profiler.enable");
      await inspector.call("Profiler.setSamplingInterval", { interval: 200 });
      await inspector.call("Profiler.start");
      const { report } = await run(Number(values.count));
      const { profile } = await inspector.call<{ profile: CpuProfile }>("Profiler.stop");
      const summary = summarize(profile, "/src/", values.callers);
      if (values.json) {
        console.log(JSON.stringify({ scenario, report, ...summary }, null, 2));
      } else {
        console.log(
          `${scenario}: ${report.ok} messages, ${report.msgPerSecond.toFixed(0)} msg/s, ` +
            `${report.serverCpuMsPerMsg?.toFixed(2)} ms relay CPU per message (profiler on)`,
        );
        console.log(`main thread, self time (% of samples; (idle) = waiting for I/O):`);
        for (const f of summary.functions.slice(0, Number(values.top))) {
          console.log(`${f.selfPercent.toFixed(1).padStart(6)}%  ${f.name.padEnd(40)} ${f.where}`);
        }
        if (values.callers !== undefined) {
          console.log(`callers of ${values.callers}:`);
          for (const c of summary.callers.slice(0, 10)) {
            console.log(`${c.percent.toFixed(1).padStart(6)}%  ${c.stack}`);
          }
        }
        console.log(`our files, inclusive:`);
        for (const f of summary.files.slice(0, Number(values.top))) {
          console.log(`${f.inclusivePercent.toFixed(1).padStart(6)}%  ${f.file}`);
        }
      }
    } finally {
      inspector.close();
    }
  } finally {
    await relay.stop();
    await sink.stop();
  }
}
