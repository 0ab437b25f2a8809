/**
 * A full disk under the outbox and the spool (a real one: a small tmpfs,
 * filled to its last block): nothing half written is left behind, the
 * attempt count survives in memory, retries back off, and the operator log
 * says so once (and once when it clears).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { MemoryAuditLog } from "../src/audit/mod.ts";
import { FileBackend } from "../src/delivery/file_backend.ts";
import { type Envelope, newQueueId } from "../src/mail/mod.ts";
import { QueueManager, readState, Spool } from "../src/queue/mod.ts";
import { canMount, fill, mountTmpfs } from "./support/tmpfs.ts";
import { until } from "./support/until.ts";

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

/** Commits one message from alice to bob into the spool; resolves with its id. */
async function queueOne(spool: Spool): Promise<string> {
  const envelope: Envelope = {
    v: 1,
    id: newQueueId(T0),
    from: "alice@example.com",
    recipients: ["bob@example.net"],
    receivedAt: new Date(T0).toISOString(),
    client: { address: "127.0.0.1", helo: "test" },
  };
  const writer = spool.begin(envelope);
  writer.write(new TextEncoder().encode("Subject: full\r\n\r\nbody\r\n"));
  await writer.commit();
  return envelope.id;
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

Deno.test({
  name: "queue: a full disk keeps the attempt count, backs off, logs once and cleans up",
  ignore: !canMount,
  fn: fullDiskKeepsCount,
});

async function fullDiskKeepsCount(): Promise<void> {
  const disk = await mountTmpfs("4m", "relay_disk_full_");
  const dir = disk.dir;
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["relay"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  const spool = await Spool.open(join(dir, "spool"));
  const outbox = join(dir, "outbox");
  const backend = await FileBackend.open(outbox);
  const audit = new MemoryAuditLog();
  const manager = new QueueManager({
    spool,
    backend,
    audit,
    retrySchedule: [60, 120, 240],
    scanIntervalMs: 0,
    now: () => T0,
  });
  const deferrals = () => audit.events.filter((event) => event.event === "message_deferred");
  const errors = () => records.filter((record) => record.level === "error");
  try {
    const id = await queueOne(spool);

    const filler = await fill(join(dir, "filler"));
    await manager.start();
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (attempt > 1) assert.equal(manager.flush(id), 1, "the message waits for its retry");
      await until(`attempt ${attempt}`, () => deferrals().length === attempt);
      await until("the attempt to finish", () => manager.stats.deferred === 1);
      const last = deferrals().at(-1)!;
      assert.equal(last.attempts, attempt, "the attempt count is kept");
      // Back off along the schedule, not at its first step every time.
      const delay = [60, 120, 240][attempt - 1];
      assert.equal(last.next_attempt, new Date(T0 + delay * 1000).toISOString());
      // Neither the outbox nor the spool keeps a half-written file or state.
      assert.deepEqual(await names(outbox), []);
      assert.deepEqual(await spool.list(), [id]);
      assert.equal(await readState(spool, id), null, "the state could not be written");
    }
    const stateErrors = errors().filter((r) => String(r.rawMessage).includes("delivery state"));
    assert.equal(stateErrors.length, 1, "one ERROR line for the condition, not one per attempt");
    assert.equal(errors().length, 1, "and no other ERROR line");

    // Space again: the next attempt delivers, and the log says the condition cleared.
    await Deno.remove(filler);
    assert.equal(manager.flush(id), 1);
    await until("the delivery", async () => (await names(outbox)).includes(`${id}.eml`));
    assert.deepEqual(await names(outbox), [`${id}.eml`, `${id}.json`]);
    const cleared = () =>
      records.filter((r) =>
        r.level === "info" && String(r.rawMessage).includes("delivery state writes recovered")
      );
    await until("the log to say the condition cleared", () => cleared().length > 0);
    assert.equal(cleared().length, 1);
    assert.equal(await spool.has(id), false);
    assert.equal(await readState(spool, id), null);
    assert.equal(errors().length, 1);
  } finally {
    await manager.stop();
    await backend.close();
    await spool.close();
    await reset();
    await disk.close();
  }
}

Deno.test({
  name: "queue: state kept in memory is written once the disk has room, before the next attempt",
  ignore: !canMount,
  fn: stateWrittenWhenRoom,
});

async function stateWrittenWhenRoom(): Promise<void> {
  const disk = await mountTmpfs("2m", "relay_disk_full_");
  const dir = disk.dir;
  const spool = await Spool.open(join(dir, "spool"));
  const audit = new MemoryAuditLog();
  // A backend that always defers: only the delivery state meets the full disk.
  const manager = new QueueManager({
    spool,
    backend: {
      name: "deferring",
      deliver: (_envelope, _data, recipients) =>
        Promise.resolve(recipients.map((recipient) => ({
          recipient,
          status: "deferred" as const,
          reply: "451 4.3.0 try later",
        }))),
      close: () => Promise.resolve(),
    },
    audit,
    retrySchedule: [60, 120, 240],
    scanIntervalMs: 0,
    now: () => T0,
  });
  try {
    const id = await queueOne(spool);
    const filler = await fill(join(dir, "filler"));
    await manager.start();
    const deferred = () => audit.events.filter((e) => e.event === "message_deferred").length;
    await until("attempt 1", () => deferred() === 1 && manager.stats.deferred === 1);
    assert.equal(await readState(spool, id), null, "nothing could be written");
    await Deno.remove(filler);
    manager.flush(id);
    await until("attempt 2", () => deferred() === 2 && manager.stats.deferred === 1);
    assert.equal((await readState(spool, id))?.attempts, 2);
  } finally {
    await manager.stop();
    await spool.close();
    await disk.close();
  }
}
