import assert from "node:assert/strict";
import { DirectorySync } from "./durable_file.ts";

Deno.test("DirectorySync: callers during a sync share the next one", async () => {
  let syncs = 0;
  const gates: (() => void)[] = [];
  const sync = new DirectorySync("/x", () => {
    syncs++;
    return new Promise<void>((resolve) => gates.push(resolve));
  });
  const first = sync.sync();
  const joined = [sync.sync(), sync.sync(), sync.sync()];
  assert.equal(syncs, 1);
  gates.shift()!();
  await first;
  await settle(() => syncs === 2); // the three waiting callers share one more sync
  gates.shift()!();
  await Promise.all(joined);
  assert.equal(syncs, 2);
});

Deno.test("DirectorySync: a failed fsync fails only its callers; the next call syncs again", async () => {
  // Outcomes of the coming fsyncs, in order; each waits for its gate.
  const outcomes = [false, true, false, true];
  const gates: (() => void)[] = [];
  const sync = new DirectorySync("/x", () => {
    const ok = outcomes.shift();
    return new Promise<void>((resolve, reject) =>
      gates.push(() => ok ? resolve() : reject(new Error("EIO")))
    );
  });
  const failing = sync.sync();
  const next = sync.sync(); // arrived during the failing sync: shares the next one
  gates.shift()!();
  await assert.rejects(failing, /EIO/);
  await settle(() => gates.length === 1);
  gates.shift()!();
  await next; // the failure did not poison the callers after it
  const failsAgain = sync.sync();
  gates.shift()!();
  await assert.rejects(failsAgain, /EIO/);
  const recovered = sync.sync(); // no sync running: a fresh one
  gates.shift()!();
  await recovered;
  assert.equal(outcomes.length, 0);
});

/** Lets pending promise callbacks run until `check` holds. */
async function settle(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await Promise.resolve();
  assert.ok(check());
}
