/**
 * The audit file as an operator sees it: JSON lines with `ts` and `event`,
 * no secrets, everything on disk after close and within a second without
 * it, rotation by size and by day keeping `max_files`, and an outage (full
 * disk, vanished or unwritable folder) reported once, counted, visible as
 * `healthy = false`, and healed without a restart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { FileAuditLog, type FileAuditLogOptions, REDACTED } from "../src/audit/mod.ts";
import { until } from "./support/until.ts";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface Ctx {
  dir: string;
  path: string;
  logs: LogRecord[];
  /** Messages at a level, rendered with their values. */
  messages(level?: LogRecord["level"]): string[];
  open(options?: Partial<FileAuditLogOptions>): Promise<FileAuditLog>;
}

async function withAudit(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "audit_test_" });
  const logs: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => logs.push(record) },
    loggers: [
      { category: ["relay", "audit"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["memory"] },
    ],
  });
  const opened: FileAuditLog[] = [];
  const path = join(dir, "logs", "audit.jsonl");
  try {
    await fn({
      dir,
      path,
      logs,
      messages: (level) =>
        logs.filter((r) => level === undefined || r.level === level).map((r) =>
          r.message.map((part) => typeof part === "string" ? part : String(part)).join("")
        ),
      open: async (options = {}) => {
        const audit = await FileAuditLog.open({ path, ...options });
        opened.push(audit);
        return audit;
      },
    });
  } finally {
    for (const audit of opened) await audit.close();
    await reset();
    await Deno.chmod(dir, 0o700).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** The parsed lines of a file (each must be valid JSON). */
async function readLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  assert.ok(text === "" || text.endsWith("\n"), "the file ends with a whole line");
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("a flat event's secrets never reach the file; its line is byte for byte ts, then its fields in order", async () => {
  await withAudit(async ({ path, open }) => {
    const audit = await open({ now: () => new Date("2026-11-29T12:00:00.007Z") });
    audit.record({
      event: "auth_attempt",
      email: "alice@example.com",
      method: "PLAIN",
      password: "hunter2",
      access_token: "tok-abc",
      "Proxy-Authorization": "Basic cXdlcnR5",
      clientSecret: 424242,
      success: false,
      note: undefined,
    });
    await audit.close();
    assert.equal(
      await Deno.readTextFile(path),
      '{"ts":"2026-11-29T12:00:00.007Z","event":"auth_attempt","email":"alice@example.com",' +
        `"method":"PLAIN","password":"${REDACTED}","access_token":"${REDACTED}",` +
        `"Proxy-Authorization":"${REDACTED}","clientSecret":"${REDACTED}","success":false}\n`,
    );
  });
});

Deno.test("events are JSON lines with an ISO ts and the event; secrets are redacted; close writes all", async () => {
  await withAudit(async ({ path, open }) => {
    const audit = await open();
    for (let i = 0; i < 250; i++) {
      audit.record({ event: "auth_attempt", email: `user${i}@example.com`, success: i % 2 === 0 });
    }
    audit.record({
      event: "oauth.token",
      token_type: "refresh_token",
      has_token: true,
      password: "hunter2",
      client_secret: "s3cr3t",
      nested: { Authorization: "Bearer abc.def", refreshToken: "xyz", bind_password: "pw" },
    });
    const cyclic: Record<string, unknown> = { event: "weird" };
    cyclic.self = cyclic;
    audit.record(cyclic as { event: string });
    audit.record({ event: "big", n: 10n });
    assert.equal(await Deno.readTextFile(path), "", "buffered, not written on the hot path");

    await audit.close();
    const lines = await readLines(path);
    assert.equal(lines.length, 253);
    for (const line of lines) {
      assert.match(String(line.ts), ISO);
      assert.equal(typeof line.event, "string");
      assert.equal(Object.keys(line)[0], "ts");
    }
    assert.deepEqual(lines.slice(0, 3).map((l) => [l.event, l.email, l.success]), [
      ["auth_attempt", "user0@example.com", true],
      ["auth_attempt", "user1@example.com", false],
      ["auth_attempt", "user2@example.com", true],
    ]);
    const token = lines[250];
    assert.deepEqual(
      { ...token, ts: undefined },
      {
        ts: undefined,
        event: "oauth.token",
        token_type: "refresh_token",
        has_token: true,
        password: REDACTED,
        client_secret: REDACTED,
        nested: { Authorization: REDACTED, refreshToken: REDACTED, bind_password: REDACTED },
      },
    );
    const text = await Deno.readTextFile(path);
    for (const secret of ["hunter2", "s3cr3t", "abc.def", "xyz", '"pw"']) {
      assert.ok(!text.includes(secret), `${secret} is not in the file`);
    }
    assert.equal(lines[251].event, "weird");
    assert.match(String(lines[251].audit_error), /could not be serialized/);
    assert.equal(lines[252].event, "big");

    audit.record({ event: "late" });
    assert.equal(audit.stats.dropped, 1, "an event after close is counted as dropped");
    assert.equal(audit.stats.written, 253);
    assert.equal((await readLines(path)).length, 253);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

Deno.test("events reach the file within a second without a close", async () => {
  await withAudit(async ({ path, open }) => {
    const audit = await open();
    const started = Date.now();
    audit.record({ event: "auth_attempt", email: "alice@example.com" });
    await until("the event on disk", async () => (await Deno.readTextFile(path)).length > 0, 3000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1500, `written after ${elapsed} ms`);
    assert.equal((await readLines(path))[0].email, "alice@example.com");
  });
});

Deno.test("the file rotates at max_bytes and keeps max_files rotated files", async () => {
  await withAudit(async ({ path, open }) => {
    const maxBytes = 1000;
    const audit = await open({ maxBytes, maxFiles: 3 });
    let seq = 0;
    // 120 events of ~90 bytes in batches of 7: about 11 files' worth.
    for (let batch = 0; batch < 18; batch++) {
      for (let i = 0; i < 7; i++) {
        audit.record({ event: "message_accepted", seq: seq++, pad: "x".repeat(30) });
      }
      await audit.flush();
    }
    await audit.close();

    const names = [path, `${path}.1`, `${path}.2`, `${path}.3`];
    for (const name of names) assert.ok(await exists(name), `${name} exists`);
    assert.equal(await exists(`${path}.4`), false, "the oldest files are deleted");
    const seqs: number[] = [];
    for (const name of names.toReversed()) {
      const size = (await Deno.stat(name)).size;
      assert.ok(size <= maxBytes, `${name} is ${size} bytes`);
      if (name !== path) assert.ok(size > maxBytes - 100, `${name} was filled before rotating`);
      for (const line of await readLines(name)) seqs.push(Number(line.seq));
    }
    // The newest events, in order, without a gap; the first ones went with the deleted files.
    assert.equal(seqs[seqs.length - 1], seq - 1);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i));
    assert.ok(seqs[0] > 0);
    assert.ok(audit.stats.rotations >= 9, `${audit.stats.rotations} rotations`);
  });
});

Deno.test("one batch larger than max_bytes is split across files at line boundaries", async () => {
  await withAudit(async ({ path, open }) => {
    const audit = await open({ maxBytes: 500, maxFiles: 10 });
    for (let seq = 0; seq < 40; seq++) audit.record({ event: "e", seq, pad: "y".repeat(40) });
    await audit.close();
    const seqs: number[] = [];
    for (let i = 10; i >= 0; i--) {
      const name = i === 0 ? path : `${path}.${i}`;
      if (!(await exists(name))) continue;
      assert.ok((await Deno.stat(name)).size <= 500);
      for (const line of await readLines(name)) seqs.push(Number(line.seq));
    }
    assert.deepEqual(seqs, Array.from({ length: 40 }, (_, i) => i));
    assert.ok(audit.stats.rotations >= 5);
  });
});

Deno.test("rotate_daily starts a new file at the first write of a UTC day", async () => {
  await withAudit(async ({ path, open }) => {
    // A file left by yesterday's run is rotated before today's first event.
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeTextFile(
      path,
      JSON.stringify({ ts: "2026-03-01T12:00:00.000Z", event: "old" }) + "\n",
    );
    await Deno.utime(path, new Date("2026-03-01T12:00:00Z"), new Date("2026-03-01T12:00:00Z"));
    let now = new Date("2026-03-02T23:59:59.000Z");
    const audit = await open({ rotateDaily: true, now: () => now });
    audit.record({ event: "late_evening" });
    await audit.flush();
    now = new Date("2026-03-03T00:00:01.000Z");
    audit.record({ event: "after_midnight" });
    await audit.close();
    assert.deepEqual((await readLines(`${path}.2`)).map((l) => l.event), ["old"]);
    assert.deepEqual((await readLines(`${path}.1`)).map((l) => [l.event, l.ts]), [
      ["late_evening", "2026-03-02T23:59:59.000Z"],
    ]);
    assert.deepEqual((await readLines(path)).map((l) => l.event), ["after_midnight"]);
    assert.equal(audit.stats.rotations, 2);
  });
});

Deno.test("a full disk is reported once, counted, unhealthy, and heals without a restart", async () => {
  await withAudit(async ({ path, open, messages }) => {
    const audit = await open({ flushIntervalMs: 50 });
    audit.record({ event: "before" });
    await audit.flush();
    assert.equal(audit.healthy, true);

    // The path now leads to a device that answers every write with ENOSPC.
    await Deno.rename(path, `${path}.before`);
    await Deno.symlink("/dev/full", path);
    for (let i = 0; i < 3; i++) audit.record({ event: "lost", i });
    await audit.flush();
    assert.equal(audit.healthy, false);
    assert.equal(audit.stats.dropped, 3);
    assert.equal(audit.stats.outages, 1);
    for (let i = 0; i < 2; i++) audit.record({ event: "lost", i });
    await audit.flush();
    // Background retries (every 50 ms) fail too, and say nothing more.
    const failures = audit.stats.writeErrors;
    await until("two background retries", () => audit.stats.writeErrors >= failures + 2);
    assert.equal(audit.healthy, false);
    assert.equal(audit.stats.dropped, 5);
    const errors = messages("error");
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(
      errors[0],
      /^AUDIT TRAIL DOWN: cannot write .*audit\.jsonl: .*(No space|ENOSPC|os error 28)/i,
    );
    assert.match(errors[0], /mail still flows/);

    // Space again: the background retry heals it; nobody needs to record an event.
    await Deno.remove(path);
    await until("healthy", () => audit.healthy);
    audit.record({ event: "after" });
    await audit.close();
    const lines = await readLines(path);
    assert.equal(lines[0].event, "audit_gap");
    assert.equal(lines[0].dropped, 5);
    assert.match(String(lines[0].since), ISO);
    assert.equal(lines[1].event, "after");
    assert.match(messages("warning").join("\n"), /writable again; 5 events were lost since/);
    assert.deepEqual((await readLines(`${path}.before`)).map((l) => l.event), ["before"]);
  });
});

Deno.test("a vanished or blocked audit folder is an outage; writes resume once it is back", async () => {
  await withAudit(async ({ dir, path, open, messages }) => {
    const audit = await open({ flushIntervalMs: 60_000, required: true });
    audit.record({ event: "one" });
    await audit.flush();
    assert.equal(audit.healthy, true);
    assert.equal(audit.required, true);

    // The folder is deleted and a file takes its name: the path cannot be created.
    const folder = join(dir, "logs");
    await Deno.remove(folder, { recursive: true });
    await Deno.writeTextFile(folder, "not a folder\n");
    audit.record({ event: "two" });
    audit.record({ event: "three" });
    await audit.flush();
    assert.equal(audit.healthy, false);
    assert.equal(audit.stats.dropped, 2);
    assert.equal(audit.stats.written, 1);
    assert.match(
      messages("error")[0],
      /AUDIT TRAIL DOWN: .*new mail is refused until it is writable/,
    );

    await Deno.remove(folder);
    audit.record({ event: "four" });
    await audit.flush();
    assert.equal(audit.healthy, true);
    const lines = await readLines(path);
    assert.deepEqual(lines.map((l) => l.event), ["audit_gap", "four"]);
    assert.equal(lines[0].dropped, 2);
    assert.equal(audit.stats.outages, 1);
  });
});

Deno.test({
  name: "a folder made read-only (chmod 0500) while running is an outage until it is writable",
  ignore: Deno.uid() === 0, // root writes anyway
  fn: async () => {
    await withAudit(async ({ dir, path, open }) => {
      const audit = await open({ flushIntervalMs: 60_000 });
      audit.record({ event: "one" });
      await audit.flush();
      const folder = join(dir, "logs");
      await Deno.remove(path); // e.g. an operator's cleanup
      await Deno.chmod(folder, 0o500);
      audit.record({ event: "two" });
      await audit.flush();
      assert.equal(audit.healthy, false);
      assert.equal(audit.stats.dropped, 1);
      await Deno.chmod(folder, 0o700);
      audit.record({ event: "three" });
      await audit.flush();
      assert.equal(audit.healthy, true);
      assert.deepEqual((await readLines(path)).map((l) => l.event), ["audit_gap", "three"]);
    });
  },
});

Deno.test("an unwritable path at start: required refuses to open, otherwise it starts unhealthy", async () => {
  await withAudit(async ({ dir, messages }) => {
    const blocker = join(dir, "blocker");
    await Deno.writeTextFile(blocker, "a file where a folder should be\n");
    const path = join(blocker, "audit.jsonl");
    await assert.rejects(
      FileAuditLog.open({ path, required: true }),
      (error: Error) => error.message.startsWith(`cannot open audit file ${path}: `),
    );
    const audit = await FileAuditLog.open({ path, flushIntervalMs: 30 });
    try {
      assert.equal(audit.healthy, false);
      assert.match(messages("error").join("\n"), /AUDIT TRAIL DOWN: cannot write .*blocker/);
      audit.record({ event: "lost" });
      await audit.flush();
      assert.equal(audit.stats.dropped, 1);
      await Deno.remove(blocker);
      await until("healthy", () => audit.healthy);
    } finally {
      await audit.close();
    }
    assert.deepEqual((await readLines(path)).map((l) => [l.event, l.dropped]), [["audit_gap", 1]]);
  });
});

Deno.test("a file moved away by an outside logrotate is recreated at the next write", async () => {
  await withAudit(async ({ path, open }) => {
    const audit = await open();
    audit.record({ event: "one" });
    await audit.flush();
    await Deno.rename(path, `${path}-20260301`);
    audit.record({ event: "two" });
    await audit.close();
    assert.deepEqual((await readLines(`${path}-20260301`)).map((l) => l.event), ["one"]);
    assert.deepEqual((await readLines(path)).map((l) => l.event), ["two"]);
    assert.equal(audit.healthy, true);
  });
});

Deno.test("a rotation that fails is reported and the events are still written", async () => {
  await withAudit(async ({ path, open, messages }) => {
    const audit = await open({ maxBytes: 200, maxFiles: 1 });
    // `<file>.1` is a non-empty folder: renaming the file onto it fails.
    await Deno.mkdir(`${path}.1`);
    await Deno.writeTextFile(join(`${path}.1`, "keep"), "x");
    for (let i = 0; i < 10; i++) audit.record({ event: "e", i, pad: "z".repeat(30) });
    await audit.close();
    assert.equal((await readLines(path)).length, 10);
    assert.equal(audit.stats.dropped, 0);
    assert.equal(audit.healthy, true);
    const errors = messages("error");
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /cannot rotate audit file .*keeps growing past the limit/);
  });
});
