import assert from "node:assert/strict";
import { FixedWindow, MemoryStateStore, SlidingWindow } from "./mod.ts";

const MINUTE = 60_000;

Deno.test("SlidingWindow weighs the previous window by its remaining overlap", async () => {
  let now = 10 * MINUTE;
  const store = new MemoryStateStore({ now: () => now });
  const w = new SlidingWindow(store, MINUTE);
  for (let i = 0; i < 4; i++) await w.hit("ip");
  assert.equal((await w.peek("ip")).estimate, 4);
  now += MINUTE + MINUTE / 4; // a quarter into the next window
  const count = await w.hit("ip");
  assert.equal(count.current, 1);
  assert.equal(count.previous, 4);
  assert.equal(count.estimate, 1 + 4 * 0.75);
  now += 2 * MINUTE;
  assert.equal((await w.peek("ip")).estimate, 0, "both windows rolled over");
  await store.close();
});

Deno.test("SlidingWindow.msUntilBelow predicts when the estimate drops under the limit", async () => {
  let now = 10 * MINUTE + 10_000;
  const store = new MemoryStateStore({ now: () => now });
  const w = new SlidingWindow(store, MINUTE);
  let count = await w.hit("k");
  for (let i = 0; i < 4; i++) count = await w.hit("k");
  assert.equal(w.msUntilBelow(count, 6), 0);
  const wait = w.msUntilBelow(count, 5);
  assert.ok(wait > 0);
  now += wait - 2;
  assert.ok((await w.peek("k")).estimate >= 5, "still at the limit just before");
  now += 2;
  assert.ok((await w.peek("k")).estimate < 5, "below the limit when predicted");
  // Limit reached through the previous window's weight.
  now = 20 * MINUTE + 1000;
  for (let i = 0; i < 10; i++) await w.hit("p");
  now = 21 * MINUTE + 1000;
  count = await w.hit("p");
  const until = w.msUntilBelow(count, 5);
  now += until;
  assert.ok((await w.peek("p")).estimate < 5);
  now -= 2;
  assert.ok((await w.peek("p")).estimate >= 5);
  await w.reset("p");
  assert.equal((await w.peek("p")).estimate, 0);
  await store.close();
});

Deno.test("FixedWindow restarts at each aligned window boundary", async () => {
  const HOUR = 60 * MINUTE;
  let now = 5 * HOUR + 59 * MINUTE;
  const store = new MemoryStateStore({ now: () => now });
  const w = new FixedWindow(store, HOUR);
  assert.equal(await w.add("u", now, 3), 3);
  assert.equal(await w.add("u", now), 4);
  assert.equal(await w.add("u", now, 0), 4);
  assert.equal(w.msLeft(now), MINUTE);
  now += MINUTE;
  assert.equal(await w.get("u", now), 0);
  assert.equal(await w.add("u", now), 1);
  await store.close();
});
