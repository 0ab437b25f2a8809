import assert from "node:assert/strict";
import { HashPool } from "./hash_pool.ts";
import { type Argon2Params, hashPassword, PasswordHashError } from "./password_hash.ts";

const CHEAP: Argon2Params = { memoryKib: 64, iterations: 1, parallelism: 1 };
const CRASHING_WORKER = new URL("./testdata/crashing_hash_worker.ts", import.meta.url);

Deno.test("HashPool answers 20 concurrent verifies on 2 lazily started workers", async () => {
  const pool = new HashPool({ size: 2 });
  try {
    assert.equal(pool.stats.workers, 0, "no worker before the first job");
    const stored = await hashPassword("right", CHEAP);
    const jobs = Array.from(
      { length: 20 },
      (_, i) => pool.verify(i % 3 === 0 ? "wrong" : "right", stored, false),
    );
    assert.equal(pool.stats.workers, 2);
    assert.equal(pool.stats.busy, 2);
    assert.equal(pool.stats.pending, 18);
    const results = await Promise.all(jobs);
    assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => i % 3 !== 0));
    assert.deepEqual(pool.stats, { workers: 2, busy: 0, pending: 0 });
  } finally {
    await pool.close();
  }
  assert.equal(pool.stats.workers, 0);
  await assert.rejects(pool.verify("right", "{PLAIN}right", true), /closed/);
});

Deno.test("HashPool hashes in a worker and reports unusable hashes as PasswordHashError", async () => {
  const pool = new HashPool({ size: 1 });
  try {
    const stored = await pool.hash("s3cret", CHEAP);
    assert.match(stored, /^\{ARGON2ID\}\$argon2id\$v=19\$m=64,t=1,p=1\$/);
    assert.equal(await pool.verify("s3cret", stored, false), true);
    assert.equal(await pool.verify("s3cret!", stored, false), false);
    await assert.rejects(
      pool.verify("s3cret", "{NOPE}abc", false),
      (error: Error) => error instanceof PasswordHashError && /\{NOPE\}/.test(error.message),
    );
    await assert.rejects(
      pool.verify("s3cret", "{PLAIN}s3cret", false),
      (error: Error) => error instanceof PasswordHashError && !error.message.includes("s3cret"),
    );
    assert.equal(await pool.verify("s3cret", "{PLAIN}s3cret", true), true);
  } finally {
    await pool.close();
  }
});

Deno.test("HashPool rejects jobs beyond its pending bound at once", async () => {
  const pool = new HashPool({ size: 1, maxPending: 2 });
  try {
    const stored = "{PLAIN}x";
    const accepted = [1, 2, 3].map(() => pool.verify("x", stored, true));
    await assert.rejects(pool.verify("x", stored, true), /queue full/);
    assert.deepEqual(await Promise.all(accepted), [true, true, true]);
    assert.equal(await pool.verify("x", stored, true), true, "room again once drained");
  } finally {
    await pool.close();
  }
});

Deno.test("HashPool fails a crashed worker's job, replaces the worker and goes on", async () => {
  const pool = new HashPool({ size: 1, workerUrl: CRASHING_WORKER });
  try {
    assert.equal(await pool.verify("a", "{PLAIN}a", true), true);
    const crashed = pool.verify("crash-now", "{PLAIN}a", true);
    const queued = [pool.verify("a", "{PLAIN}a", true), pool.verify("b", "{PLAIN}a", true)];
    await assert.rejects(crashed, /worker crashed/);
    assert.deepEqual(await Promise.all(queued), [true, false]);
    assert.equal(pool.stats.workers, 1, "the crashed worker was replaced, not added to");
  } finally {
    await pool.close();
  }
});

Deno.test("HashPool.close() rejects running and queued jobs", async () => {
  const pool = new HashPool({ size: 1 });
  const stored = await hashPassword("x", { memoryKib: 2048, iterations: 2, parallelism: 1 });
  const running = pool.verify("x", stored, false);
  const queued = pool.verify("x", stored, false);
  await pool.close();
  await assert.rejects(running, /closed/);
  await assert.rejects(queued, /closed/);
  await pool.close();
});
