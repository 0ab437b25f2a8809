import assert from "node:assert/strict";
import fc from "fast-check";
import { hasEightBitBytes, newQueueId } from "./mod.ts";

Deno.test("hasEightBitBytes: a byte of 0x80 or above anywhere, at any alignment", () => {
  const buffer = new Uint8Array(64).fill(0x41);
  for (let offset = 0; offset < 8; offset++) {
    for (let length = 0; length <= 40; length++) {
      const view = buffer.subarray(offset, offset + length);
      assert.equal(hasEightBitBytes(view), false, `7-bit, offset ${offset} length ${length}`);
      for (let at = 0; at < length; at++) {
        view[at] = 0x80;
        assert.equal(hasEightBitBytes(view), true, `offset ${offset} length ${length} at ${at}`);
        view[at] = 0x41;
      }
    }
  }
  // A high byte just outside the view does not count.
  buffer[3] = 0xff;
  assert.equal(hasEightBitBytes(buffer.subarray(4, 20)), false);
});

Deno.test("hasEightBitBytes agrees with a byte-by-byte scan", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(7), (bytes, offset) => {
      const view = bytes.subarray(Math.min(offset, bytes.length));
      assert.equal(hasEightBitBytes(view), view.some((b) => b >= 0x80));
    }),
  );
});

Deno.test("newQueueId: upper-case hex, time-ordered, a queue id", () => {
  const id = newQueueId(0x19c2f3a4b5c);
  assert.match(id, /^19C2F3A4B5C[0-9A-F]{10}$/);
  assert.ok(newQueueId(1_000_000_000_000) < newQueueId(1_000_000_000_001));
});
