import assert from "node:assert/strict";
import { parseStatCpuMs, readCpuMs } from "./cpu.ts";
import { percentile, runPooled, runTasks } from "./load.ts";
import {
  coresBusy,
  formatTable,
  mergeRounds,
  runScenario,
  type ScenarioReport,
  withRatios,
} from "./bench.ts";
import { startCeiling } from "./ceiling_server.ts";
import { makeMessage, type SmtpTarget } from "./smtp_target.ts";
import { makeTestCertificates } from "../src/delivery/_smtp_test_server.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("runTasks keeps exactly `concurrency` tasks in flight and counts failures", async () => {
  let inFlight = 0;
  let peak = 0;
  const result = await runTasks({
    count: 20,
    concurrency: 4,
    task: async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep(2);
      inFlight--;
      if (i % 5 === 0) throw new Error("boom");
    },
  });
  assert.equal(peak, 4);
  assert.equal(result.ok, 16);
  assert.equal(result.failed, 4);
  assert.deepEqual([...result.errors], [["Error: boom", 4]]);
  assert.equal(result.latenciesMs.length, 16);
  assert.ok(result.latenciesMs.every((ms) => ms >= 1));
});

Deno.test("runTasks stops starting tasks after maxFailures", async () => {
  let started = 0;
  const result = await runTasks({
    count: 100,
    concurrency: 1,
    maxFailures: 3,
    task: () => {
      started++;
      return Promise.reject(new Error("down"));
    },
  });
  assert.equal(started, 3);
  assert.equal(result.failed, 3);
});

Deno.test("runPooled reuses sessions and replaces a broken one", async () => {
  const opened: number[] = [];
  const closed: [number, boolean][] = [];
  const seen: [number, number][] = [];
  let id = 0;
  const result = await runPooled({
    count: 10,
    sessions: 2,
    open: () => {
      const session = ++id;
      opened.push(session);
      return Promise.resolve(session);
    },
    task: async (session, index, onSession) => {
      await sleep(1);
      seen.push([session, onSession]);
      if (index === 3) throw new Error("connection lost");
    },
    close: (session, broken) => {
      closed.push([session, broken]);
      return Promise.resolve();
    },
  });
  assert.equal(result.ok, 9);
  assert.equal(result.failed, 1);
  assert.equal(opened.length, 3);
  assert.equal(closed.length, 3);
  assert.equal(closed.filter(([, broken]) => broken).length, 1);
  // Every session numbers its tasks from 0.
  for (const s of opened) {
    const counts = seen.filter(([x]) => x === s).map(([, n]) => n);
    assert.deepEqual(counts, counts.map((_, i) => i));
  }
});

Deno.test("percentile uses the nearest rank", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

Deno.test("parseStatCpuMs reads utime + stime even with odd command names", () => {
  const stat = "1234 (deno (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 " +
    "12345 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
  assert.equal(parseStatCpuMs(stat), 3250);
  assert.equal(parseStatCpuMs("garbage"), null);
});

Deno.test("readCpuMs reads this process, and null for a missing one", async () => {
  const self = await readCpuMs("self");
  assert.ok(self !== null && self >= 0);
  assert.equal(await readCpuMs(2 ** 30), null);
});

Deno.test("makeMessage builds a CRLF message of the asked size", () => {
  for (const size of [300, 2048, 10_000]) {
    const text = new TextDecoder().decode(
      makeMessage({ from: "a@example.com", to: ["b@example.net"], size }),
    );
    assert.equal(text.length, size);
    assert.equal(text.replace(/\r\n/g, "").search(/[\r\n]/), -1);
    assert.ok(text.endsWith("\r\n"));
    assert.match(text, /^From: <a@example.com>\r\nTo: <b@example.net>\r\n/);
  }
});

function row(system: string, msgPerSecond: number, cpu: number | null, ok = 200): ScenarioReport {
  return {
    system,
    scenario: "pooled",
    mode: "smtps",
    concurrency: 12,
    ok,
    failed: 0,
    msgPerSecond,
    p50Ms: 12.34,
    p99Ms: 40.5,
    serverCpuMsPerMsg: cpu,
    clientCpuMsPerMsg: 0.5,
    rateVsCeiling: null,
    cpuVsCeiling: null,
    errors: {},
  };
}

Deno.test("formatTable aligns columns and shows missing values as -", () => {
  const table = formatTable([row("target", 812.4, null)]);
  const [header, rule, line] = table.split("\n");
  assert.equal(header.length, line.length);
  assert.equal(rule.length, line.length);
  assert.match(
    line,
    /^target\s+pooled\s+smtps\s+12\s+200\s+0\s+812\s+-\s+12\.3\s+40\.5\s+-\s+-\s+0\.50$/,
  );
});

Deno.test("coresBusy: relay and client CPU per message times the rate, in cores", () => {
  // 800 msg/s × (0.8 + 0.5) ms = 1.04 cores.
  assert.ok(Math.abs(coresBusy(row("relay-sink", 800, 0.8))! - 1.04) < 1e-9);
  assert.equal(coresBusy(row("relay-sink", 800, null)), null);
});

Deno.test("mergeRounds sums rounds per system; withRatios divides by the ceiling's row", () => {
  const merged = withRatios(mergeRounds([
    row("ceiling", 8000, 0.1, 2000), // 0.25 s
    row("relay-sink", 1000, 0.8, 2000), // 2 s
    row("relay-sink", 4000, 0.4, 2000), // 0.5 s
    row("ceiling", 8000, 0.1, 2000),
  ]));
  assert.deepEqual(merged.map((r) => r.system), ["ceiling", "relay-sink"]);
  const [ceiling, relay] = merged;
  assert.equal(ceiling.ok, 4000);
  assert.equal(ceiling.rateVsCeiling, 1);
  assert.equal(relay.msgPerSecond, 4000 / 2.5);
  assert.ok(Math.abs(relay.serverCpuMsPerMsg! - 0.6) < 1e-9);
  assert.equal(relay.rateVsCeiling, 1600 / 8000);
  assert.ok(Math.abs(relay.cpuVsCeiling! - 6) < 1e-9);
  // Without a ceiling there is nothing to divide by.
  assert.equal(withRatios([row("target", 100, 1)])[0].rateVsCeiling, null);
});

Deno.test("the ceiling server (npm smtp-server, zero work) takes pooled and new-connection mail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_bench_test_" });
  const certs = await makeTestCertificates(dir);
  const ceiling = await startCeiling({ certPath: certs.certPath, keyPath: certs.keyPath });
  try {
    const target: SmtpTarget = {
      host: "127.0.0.1",
      port: ceiling.port,
      security: "implicit",
      servername: "localhost",
      caCerts: [certs.caCert],
      username: "bench@example.com",
      password: "not checked",
      from: "bench@example.com",
      to: ["rcpt@example.net"],
    };
    for (const scenario of ["pooled", "concurrent"] as const) {
      const { report } = await runScenario({
        scenario,
        mode: "smtps",
        target,
        count: 20,
        size: 1024,
        concurrency: 4,
        warmup: 0,
        serverPid: ceiling.pid,
      });
      assert.equal(report.ok, 20, JSON.stringify(report.errors));
      assert.equal(report.failed, 0);
      assert.ok(report.serverCpuMsPerMsg !== null && report.serverCpuMsPerMsg >= 0);
    }
  } finally {
    await ceiling.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
