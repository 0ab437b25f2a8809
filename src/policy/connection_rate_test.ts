import assert from "node:assert/strict";
import { MemoryStateStore } from "../state/mod.ts";
import { ConnectionRateLimiter } from "./mod.ts";

Deno.test("ConnectionRateLimiter allows perMinute new connections per address, then refuses", async () => {
  let now = 1_700_000_000_000;
  const store = new MemoryStateStore({ now: () => now });
  const limiter = new ConnectionRateLimiter({ store, perMinute: 3 });
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(await limiter.allow("192.0.2.1"));
  assert.deepEqual(answers, [true, true, true, false, false]);
  assert.equal(await limiter.allow("192.0.2.2"), true, "other addresses are counted apart");
  now += 2 * 60_000;
  assert.equal(await limiter.allow("192.0.2.1"), true, "the window rolls over");
  await store.close();
});

Deno.test("ConnectionRateLimiter with 0 allows everything and stores nothing", async () => {
  const store = new MemoryStateStore();
  const limiter = new ConnectionRateLimiter({ store, perMinute: 0 });
  for (let i = 0; i < 100; i++) assert.equal(await limiter.allow("192.0.2.1"), true);
  assert.equal(store.size, 0);
  assert.equal(limiter.enabled, false);
  await store.close();
});
