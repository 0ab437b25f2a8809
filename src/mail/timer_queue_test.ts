import assert from "node:assert/strict";
import { until } from "../../tests/support/until.ts";
import { TimerQueue } from "./timer_queue.ts";

Deno.test("TimerQueue runs callbacks in the order their times fall, ties in set order, never early", async () => {
  const timers = new TimerQueue();
  const ran: string[] = [];
  const early: string[] = [];
  const set = (name: string, ms: number) => {
    const at = performance.now() + ms;
    return timers.setTimeout(() => {
      if (performance.now() < at) early.push(name);
      ran.push(name);
    }, ms);
  };
  set("c", 30);
  set("a", 5);
  set("b1", 15);
  set("b2", 15);
  const cleared = set("never", 10);
  set("d", 40);
  timers.clearTimeout(cleared);
  timers.clearTimeout(cleared); // twice: harmless
  assert.equal(timers.size, 5);
  // "never" was due before "d": once "d" has run, it would have run too.
  await until("every callback ran", () => ran.includes("d"));
  assert.deepEqual(ran, ["a", "b1", "b2", "c", "d"]);
  assert.deepEqual(early, []);
  assert.equal(timers.size, 0);
});

Deno.test("TimerQueue keeps the heap order through many sets and clears", async () => {
  const timers = new TimerQueue();
  const ran: number[] = [];
  const expected: { due: number; seq: number }[] = [];
  const handles: unknown[] = [];
  // A fixed pseudo-random sequence: the same run every time.
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 300; i++) {
    const ms = Math.floor(random() * 40);
    const at = performance.now() + ms;
    handles.push(timers.setTimeout(() => ran.push(i), ms));
    expected.push({ due: at, seq: i });
  }
  const clearedSet = new Set<number>();
  for (let i = 0; i < 300; i += 3) {
    timers.clearTimeout(handles[i]);
    clearedSet.add(i);
  }
  const want = expected.filter((e) => !clearedSet.has(e.seq));
  await until("every remaining callback ran", () => ran.length === want.length);
  assert.equal(timers.size, 0);
  assert.ok(ran.every((i) => !clearedSet.has(i)), "a cleared callback ran");
  // Each ran no earlier than any entry due before it minus clock skew between the two reads.
  const dueOf = new Map(expected.map((e) => [e.seq, e.due]));
  for (let k = 1; k < ran.length; k++) {
    assert.ok(dueOf.get(ran[k])! >= dueOf.get(ran[k - 1])! - 1, `out of order at ${k}`);
  }
});

// The test sanitizer fails a test that leaves a runtime timer armed: clearing
// the last entry must cancel it.
Deno.test("TimerQueue holds no runtime timer once nothing is pending", () => {
  const timers = new TimerQueue();
  const first = timers.setTimeout(() => {}, 60_000);
  const second = timers.setTimeout(() => {}, 120_000);
  timers.clearTimeout(first);
  assert.equal(timers.size, 1);
  timers.clearTimeout(second);
  assert.equal(timers.size, 0);
});
