import assert from "node:assert/strict";
import { commandDeadline, dataDeadline, type DeadlineLimits } from "./deadlines.ts";

const limits: DeadlineLimits = {
  commandMs: 300_000,
  dataMs: 600_000,
  minBytesPerSecond: 500,
  dataGraceMs: 30_000,
  sessionMs: 3_600_000,
};

Deno.test("commandDeadline: the command limit, capped by the session's end", () => {
  assert.deepEqual(commandDeadline(limits, 0, 1000), { ms: 300_000, kind: "command" });
  assert.deepEqual(commandDeadline(limits, 0, 3_500_000), { ms: 100_000, kind: "session" });
  assert.deepEqual(commandDeadline({ ...limits, sessionMs: 0 }, 0, 9e9), {
    ms: 300_000,
    kind: "command",
  });
});

Deno.test("dataDeadline: grace first, then the bytes received buy time at the minimum rate", () => {
  // Nothing received: the grace period.
  assert.deepEqual(dataDeadline(limits, 0, 0, 0, 0), { ms: 30_000, kind: "data_rate" });
  // 50,000 bytes at 500 B/s last until 100 s after the 354.
  assert.deepEqual(dataDeadline(limits, 0, 0, 50_000, 40_000), { ms: 60_000, kind: "data_rate" });
  // A fast client meets the total deadline first.
  assert.deepEqual(dataDeadline(limits, 0, 0, 10_000_000, 1000), { ms: 599_000, kind: "data" });
  // No minimum rate: only the total deadline.
  assert.deepEqual(dataDeadline({ ...limits, minBytesPerSecond: 0 }, 0, 0, 0, 0), {
    ms: 600_000,
    kind: "data",
  });
  // Late in the session, its end comes first.
  assert.deepEqual(dataDeadline(limits, 0, 3_590_000, 1e9, 3_595_000), {
    ms: 5_000,
    kind: "session",
  });
});
