import assert from "node:assert/strict";
import { parseStatCpuMs, readCpuMs } from "./cpu.ts";
import { percentile, runPooled, runTasks } from "./load.ts";
import { formatTable } from "./bench.ts";
import { makeMessage } from "./smtp_target.ts";

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

Deno.test("formatTable aligns columns and shows missing CPU as -", () => {
  const table = formatTable([{
    scenario: "pooled",
    mode: "smtps",
    concurrency: 12,
    ok: 200,
    failed: 0,
    msgPerSecond: 812.4,
    p50Ms: 12.34,
    p99Ms: 40.5,
    serverCpuMsPerMsg: null,
    clientCpuMsPerMsg: 0.5,
    errors: {},
  }]);
  const [header, rule, row] = table.split("\n");
  assert.equal(header.length, row.length);
  assert.equal(rule.length, row.length);
  assert.match(row, /^pooled\s+smtps\s+12\s+200\s+0\s+812\s+12\.3\s+40\.5\s+-\s+0\.50$/);
});
