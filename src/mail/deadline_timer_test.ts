import assert from "node:assert/strict";
import { DeadlineTimer, type TimerFunctions } from "./deadline_timer.ts";

/** A manual clock with timers that fire only when the test advances time. */
class FakeTime implements TimerFunctions {
  now = 0;
  #next = 1;
  timers = new Map<number, { at: number; callback: () => void }>();
  /** Every `setTimeout` call's delay, to count (re-)arms. */
  armed: number[] = [];

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.timers.set(id, { at: this.now + ms, callback });
    this.armed.push(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Moves the clock to `to`, firing due timers in order (each may arm another). */
  advance(to: number): void {
    while (true) {
      let first: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= to && (!first || entry[1].at < first[1].at)) first = entry;
      }
      if (!first) break;
      this.timers.delete(first[0]);
      this.now = first[1].at;
      first[1].callback();
    }
    this.now = to;
  }
}

function setup() {
  const time = new FakeTime();
  const expired: number[] = [];
  const deadline = new DeadlineTimer(() => expired.push(time.now), {
    now: () => time.now,
    timers: time,
  });
  return { time, expired, deadline };
}

Deno.test("DeadlineTimer fires once, at the deadline", () => {
  const { time, expired, deadline } = setup();
  deadline.set(300);
  assert.equal(deadline.pending, true);
  time.advance(299);
  assert.deepEqual(expired, []);
  time.advance(10_000);
  assert.deepEqual(expired, [300]);
  assert.equal(deadline.pending, false);
  assert.equal(deadline.armed, false);
  assert.equal(time.timers.size, 0);
});

Deno.test("DeadlineTimer: a later deadline is only recorded; the timer re-arms for the rest", () => {
  const { time, expired, deadline } = setup();
  deadline.set(300);
  for (let t = 10; t <= 250; t += 10) {
    time.advance(t);
    deadline.set(300); // one per command line: no timer work
  }
  assert.deepEqual(time.armed, [300]);
  // The first timer fires at 300, finds the deadline at 550 and waits 250 more.
  time.advance(549);
  assert.deepEqual(time.armed, [300, 250]);
  assert.deepEqual(expired, []);
  time.advance(550);
  assert.deepEqual(expired, [550]);
  assert.equal(time.timers.size, 0);
});

Deno.test("DeadlineTimer: an earlier deadline re-arms the one timer", () => {
  const { time, expired, deadline } = setup();
  deadline.set(300_000);
  time.advance(1000);
  deadline.set(30_000);
  assert.deepEqual(time.armed, [300_000, 30_000]);
  assert.equal(time.timers.size, 1, "the first timer was cancelled");
  time.advance(31_000);
  assert.deepEqual(expired, [31_000]);
  assert.equal(time.timers.size, 0);
});

Deno.test("DeadlineTimer: a cleared deadline never expires and its timer lapses", () => {
  const { time, expired, deadline } = setup();
  deadline.set(300);
  time.advance(100);
  deadline.clear();
  assert.equal(deadline.pending, false);
  assert.equal(deadline.armed, true, "lazy: clearing costs no timer call");
  time.advance(10_000);
  assert.deepEqual(expired, []);
  assert.equal(deadline.armed, false);
  assert.deepEqual(time.armed, [300], "nothing re-armed for a cleared deadline");
  // A new deadline after the lapse arms again.
  deadline.set(50);
  time.advance(10_050);
  assert.deepEqual(expired, [10_050]);
});

Deno.test("DeadlineTimer: a deadline already passed expires at once", () => {
  const { time, expired, deadline } = setup();
  deadline.set(0);
  assert.deepEqual(expired, [0]);
  assert.equal(time.timers.size, 0);
  deadline.set(-5);
  assert.deepEqual(expired, [0, 0]);
});

Deno.test("DeadlineTimer: dispose cancels the timer; set after dispose does nothing", () => {
  const { time, expired, deadline } = setup();
  deadline.set(300);
  deadline.dispose();
  assert.equal(time.timers.size, 0);
  deadline.set(10);
  assert.equal(time.timers.size, 0);
  time.advance(1000);
  assert.deepEqual(expired, []);
});

Deno.test("DeadlineTimer with real timers: expires, and leaves no timer behind", async () => {
  // Deno's op sanitizer fails this test if a timer outlives it.
  let fired!: () => void;
  const done = new Promise<void>((resolve) => fired = resolve);
  const deadline = new DeadlineTimer(fired);
  const started = performance.now();
  deadline.set(40);
  deadline.set(20); // earlier: re-armed
  deadline.set(30); // later: recorded, the 20 ms timer re-arms for 10 more
  await done;
  assert.ok(performance.now() - started >= 29);
  // An armed timer for a deadline far away goes with dispose.
  using later = new DeadlineTimer(() => assert.fail("disposed deadline expired"));
  later.set(60_000);
  assert.equal(later.armed, true);
});
