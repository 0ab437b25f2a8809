/**
 * Profiles the relay during one pooled run (relay → Postfix smtp-sink): the
 * relay runs with `--v8-flags=--perf-basic-prof` (so `perf` can name the JIT's
 * functions), `perf record -g` samples its process while 12 pooled clients
 * send, and the top self-time entries are printed.
 *
 * ```text
 * deno run --allow-all bench/profile_pooled.ts [--count 6000] [--top 10] [--keep] [--scenario concurrent]
 * ```
 *
 * Needs `perf` (Debian `linux-perf`) and permission to sample (root, or
 * `kernel.perf_event_paranoid` <= 1).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runScenario, type Scenario, SCENARIOS } from "./bench.ts";
import { relayTarget, startRelay } from "./relay_process.ts";
import { startSmtpSink } from "./smtp_sink_backend.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    count: { type: "string", default: "6000" },
    top: { type: "string", default: "10" },
    keep: { type: "boolean", default: false },
    scenario: { type: "string", default: "pooled" },
  },
});
const scenario = values.scenario as Scenario;
if (!SCENARIOS.includes(scenario)) throw new Error(`--scenario: one of ${SCENARIOS.join(", ")}`);
const sink = await startSmtpSink();
const relay = await startRelay({
  relayUrl: `smtp://127.0.0.1:${sink.port}?tls=none`,
  logLevel: "info",
  denoFlags: ["--v8-flags=--perf-basic-prof"],
  keepDir: values.keep,
});
const data = `${relay.dir}/perf.data`;
try {
  const target = relayTarget(relay);

  const settle = async () => {
    while ((await relay.spooled()) > 0) await new Promise((r) => setTimeout(r, 20));
  };
  // Warm up without the profiler, then sample the measured run and its delivery.
  await runScenario({
    scenario: "pooled",
    mode: "smtps",
    target,
    count: 1000,
    size: 1024,
    concurrency: 12,
    warmup: 0,
    settle,
  });
  const perf = new Deno.Command("perf", {
    args: ["record", "-g", "-F", "999", "-p", String(relay.pid), "-o", data],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await new Promise((r) => setTimeout(r, 500)); // perf attaches
  const { report } = await runScenario({
    scenario,
    mode: "smtps",
    target,
    count: Number(values.count),
    size: 1024,
    concurrency: 12,
    warmup: 0,
    serverPid: relay.pid,
    settle,
  });
  perf.kill("SIGINT");
  const perfOut = await perf.output();
  console.error(new TextDecoder().decode(perfOut.stderr).trim());
  console.log(
    `${scenario}: ${report.ok} messages, ${report.msgPerSecond.toFixed(0)} msg/s, ` +
      `${report.serverCpuMsPerMsg?.toFixed(2)} ms relay CPU per message (while sampled)`,
  );
  const out = await new Deno.Command("perf", {
    args: [
      "report",
      "-i",
      data,
      "--no-children",
      "--sort",
      "dso,symbol",
      "--stdio",
      "--percent-limit",
      "0.5",
      "-g",
      "none",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).split("\n")
    .filter((line) => /^\s+\d+\.\d+%/.test(line));
  console.log(`top ${values.top} self-time entries (perf, relay process, all threads):`);
  console.log(lines.slice(0, Number(values.top)).join("\n"));
} finally {
  await relay.stop();
  await sink.stop();
}
