import assert from "node:assert/strict";
import { MemoryStateStore } from "./mod.ts";

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

Deno.test("MemoryStateStore increments a counter that expires a window after its first hit", async () => {
  const c = clock();
  const store = new MemoryStateStore({ now: c.now });
  assert.equal(await store.increment("k", 1000), 1);
  c.advance(600);
  assert.equal(await store.increment("k", 1000), 2);
  assert.equal(await store.get("k"), "2");
  assert.equal(await store.ttl("k"), 400);
  c.advance(400);
  assert.equal(await store.get("k"), null);
  assert.equal(await store.ttl("k"), null);
  assert.equal(await store.increment("k", 1000), 1);
  await store.close();
});

Deno.test("MemoryStateStore set/get/delete, set replaces value and expiry", async () => {
  const c = clock();
  const store = new MemoryStateStore({ now: c.now });
  await store.set("a", "x", 100);
  assert.equal(await store.get("a"), "x");
  await store.set("a", "7", 1000);
  c.advance(500);
  assert.equal(await store.increment("a", 10), 8, "a numeric string is a counter");
  assert.equal(await store.ttl("a"), 500, "increment keeps the existing expiry");
  await store.delete("a");
  await store.delete("missing");
  assert.equal(await store.get("a"), null);
  await store.set("s", "not a number", 1000);
  await assert.rejects(store.increment("s", 1000), TypeError);
  await assert.rejects(store.set("a", "x", 0), RangeError);
  await store.close();
  await assert.rejects(store.get("a"), /closed/);
});

Deno.test("MemoryStateStore sweeps expired keys once the sweep interval has passed", async () => {
  const c = clock();
  const store = new MemoryStateStore({ now: c.now, sweepIntervalMs: 10_000 });
  for (let i = 0; i < 100; i++) await store.increment(`k${i}`, 1000);
  await store.set("long", "v", 60_000);
  assert.equal(store.size, 101);
  c.advance(5000);
  await store.get("long");
  assert.equal(store.size, 101, "no sweep before the interval");
  c.advance(5000);
  await store.get("long");
  assert.equal(store.size, 1);
  await store.close();
});

Deno.test("MemoryStateStore never holds more than maxKeys, evicting the oldest first", async () => {
  const c = clock();
  const store = new MemoryStateStore({ now: c.now, maxKeys: 16 });
  for (let i = 0; i < 1000; i++) {
    await store.increment(`flood${i}`, 60_000);
    assert.ok(store.size <= 16);
  }
  assert.ok(store.evictions >= 1000 - 16);
  assert.equal(await store.get("flood999"), "1", "the newest key survives");
  assert.equal(await store.get("flood0"), null, "the oldest was evicted");
  // Expired keys go before live ones are evicted.
  const quiet = new MemoryStateStore({ now: c.now, maxKeys: 4 });
  await quiet.set("live", "1", 100_000);
  for (let i = 0; i < 3; i++) await quiet.set(`short${i}`, "1", 10);
  c.advance(10);
  await quiet.set("new", "1", 100_000);
  assert.equal(quiet.evictions, 0);
  assert.equal(await quiet.get("live"), "1");
  await store.close();
  await quiet.close();
});

Deno.test("MemoryStateStore increments by an amount, and gives back with a negative one", async () => {
  const store = new MemoryStateStore();
  assert.equal(await store.increment("r", 1000, 7), 7);
  assert.equal(await store.increment("r", 1000, 3), 10);
  assert.equal(await store.increment("r", 1000, -4), 6, "a negative amount releases");
  await assert.rejects(store.increment("r", 1000, 1.5), RangeError);
  await store.close();
});

Deno.test("MemoryStateStore hitWindow counts the current and previous window on its clock", async () => {
  const c = clock(60_000 * 100); // the start of window 100
  const store = new MemoryStateStore({ now: c.now });
  assert.deepEqual(await store.hitWindow("w", 60_000, 0), {
    current: 0,
    previous: 0,
    now: c.now(),
  });
  assert.equal(await store.get("w"), null, "a read creates nothing");
  assert.equal((await store.hitWindow("w", 60_000)).current, 1);
  assert.equal((await store.hitWindow("w", 60_000, 2)).current, 3);
  c.advance(60_000);
  assert.deepEqual(await store.hitWindow("w", 60_000), { current: 1, previous: 3, now: c.now() });
  c.advance(120_000);
  assert.deepEqual(await store.hitWindow("w", 60_000, 0), {
    current: 0,
    previous: 0,
    now: c.now(),
  });
  // A give-back leaves the window that holds its hit, never below 0, and needs `at`.
  const hit = await store.hitWindow("w", 60_000, 2);
  c.advance(60_000);
  assert.deepEqual(await store.hitWindow("w", 60_000, -1, hit.now), {
    current: 0,
    previous: 1,
    now: c.now(),
  });
  await store.hitWindow("w", 60_000, -5, hit.now);
  assert.equal((await store.hitWindow("w", 60_000, 0)).previous, 0);
  await assert.rejects(store.hitWindow("w", 60_000, -1), RangeError);
  await store.set("s", "1", 1000);
  await assert.rejects(store.hitWindow("s", 60_000), TypeError);
  await store.close();
});

Deno.test("MemoryStateStore slots: a limit of live leases, renewed, released, expired", async () => {
  const c = clock();
  const store = new MemoryStateStore({ now: c.now });
  assert.equal(await store.acquireSlot("ip", "a", 2, 1000), true);
  assert.equal(await store.acquireSlot("ip", "b", 2, 1000), true);
  assert.equal(await store.acquireSlot("ip", "c", 2, 1000), false, "two live leases");
  assert.equal(
    await store.acquireSlot("ip", "a", 2, 1000),
    true,
    "a holder may take its own again",
  );
  await store.releaseSlot("ip", "b");
  assert.equal(await store.acquireSlot("ip", "c", 2, 1000), true);
  c.advance(600);
  await store.renewSlot("ip", "a", 1000);
  c.advance(600);
  // c's lease ran out (a crashed holder); a's was renewed.
  assert.equal(await store.acquireSlot("ip", "d", 2, 1000), true);
  assert.equal(await store.acquireSlot("ip", "e", 2, 1000), false);
  await store.set("v", "1", 1000);
  await assert.rejects(store.acquireSlot("v", "a", 1, 1000), TypeError);
  await store.close();
});
