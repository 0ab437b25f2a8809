import assert from "node:assert/strict";
import fc from "fast-check";
import { isoTimeFormatter } from "./iso_time.ts";

Deno.test("isoTimeFormatter: every call gives toISOString() of its time, repeated or not", () => {
  const iso = isoTimeFormatter();
  const time = fc.integer({ min: -8.64e15, max: 8.64e15 });
  fc.assert(
    fc.property(
      fc.array(fc.oneof(time, fc.constant(0), fc.constant(1)), { maxLength: 20 }),
      (list) => {
        for (const ms of list) assert.equal(iso(ms), new Date(ms).toISOString());
      },
    ),
  );
  assert.equal(iso(1_796_000_000_123), "2026-11-30T00:53:20.123Z");
  assert.throws(() => iso(NaN), RangeError);
  assert.throws(() => iso(8.64e15 + 1), RangeError);
});
