/**
 * `relay queue` against a running relay: list and show deferred messages,
 * stats, retry one now (the server notices within its scan interval),
 * delete one (the server forgets it). Two commands run as real `main.ts`
 * subprocesses, the rest through `runQueueCommand` in this process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runQueueCommand } from "../src/cli/queue.ts";
import { configSchema } from "../src/config/mod.ts";
import { type QueueEntry, readState } from "../src/queue/mod.ts";
import { connectAs, startTestRelay, type TestRelay } from "./support/relay.ts";
import { SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

async function submit(t: TestRelay, to: string, subject: string): Promise<string> {
  const client = await connectAs(t);
  try {
    const result = await client.send({
      from: "alice@example.com",
      to: [to],
      data: encoder.encode(`Subject: ${subject}\r\n\r\nbody\r\n`),
    });
    return /queued as (\S+)/.exec(result.final!.lines[0])![1];
  } finally {
    await client.quit();
  }
}

/** `deno run main.ts queue ARGS --config FILE` as an operator would type it. */
async function cli(configPath: string, args: string[]): Promise<{ code: number; out: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "queue", ...args, "--config", configPath],
    cwd: ROOT,
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(result.stdout);
  const err = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `relay queue ${args.join(" ")}: ${err}`);
  return { code: result.code, out };
}

async function run(t: TestRelay, args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const code = await runQueueCommand(args, t.config, {
    stdout: (line) => out.push(line),
    stderr: (line) => out.push(line),
  });
  return { code, out };
}

Deno.test("relay queue: list, show, stats, retry and delete while the server runs", async () => {
  const sink = await SmtpSink.start();
  sink.rcptReply = () => "451 4.3.0 backend busy";
  const t = await startTestRelay({
    config: {
      relay: {
        url: `smtp://127.0.0.1:${sink.port}?tls=none`,
        retry_schedule: [3600],
        scan_interval: 0.1,
      },
    },
  });
  try {
    const configPath = join(t.dir, "relay.toml");
    await Deno.writeTextFile(
      configPath,
      `[spool]\ndir = ${JSON.stringify(t.config.spool.dir)}\n\n` +
        `[relay]\nscan_interval = 0.1\n\n[log]\nlevel = "error"\n`,
    );
    const first = await submit(t, "one@dest.org", "first");
    const second = await submit(t, "two@dest.org", "second");
    for (const id of [first, second]) {
      await until(`${id} deferred`, async () => (await readState(t.relay.spool, id)) !== null);
    }

    const listed = JSON.parse((await cli(configPath, ["list", "--json"])).out) as QueueEntry[];
    assert.deepEqual(listed.map((e) => [e.id, e.status, e.pending, e.attempts]), [
      [first, "deferred", ["one@dest.org"], 1],
      [second, "deferred", ["two@dest.org"], 1],
    ]);
    assert.match(listed[0].lastError!, /^451 4\.3\.0 backend busy/);
    assert.equal(listed[0].user, "alice@example.com");

    const table = await run(t, ["list"]);
    assert.equal(table.code, 0);
    assert.ok(table.out.some((l) => l.startsWith(first) && l.endsWith("<alice@example.com>")));
    assert.equal(table.out[table.out.length - 1], "-- 1 KiB in 2 message(s)");

    const show = await run(t, ["show", first]);
    assert.equal(show.code, 0);
    assert.ok(show.out.includes("status:      deferred"));
    assert.ok(
      show.out.some((l) => /^ {2}one@dest\.org: deferred \(451 4\.3\.0 backend busy/.test(l)),
    );
    assert.ok(show.out.includes("  Subject: first"));

    const stats = JSON.parse((await run(t, ["stats", "--json"])).out[0]);
    assert.equal(stats.messages, 2);
    assert.equal(stats.deferred, 2);
    assert.equal(stats.recipients, 2);
    assert.deepEqual(stats.byDomain, [{ domain: "dest.org", recipients: 2 }]);

    // The backend is fine again; without a retry request nothing would happen for an hour.
    sink.rcptReply = undefined;
    const retried = await cli(configPath, ["retry", first]);
    assert.match(retried.out, new RegExp(`retry of ${first} requested`));
    await sink.waitForMessages(1, 5000);
    assert.deepEqual(sink.messages[0].recipients, ["one@dest.org"]);

    const deleted = await run(t, ["delete", second]);
    assert.deepEqual(deleted, {
      code: 0,
      out: [`deleted ${second} (a delivery already under way may still complete)`],
    });
    await until("the server to forget it", () => t.relay.queue.stats.deferred === 0, 3000);
    assert.equal((await run(t, ["retry", "--all"])).code, 0);
    await until(
      "the first message to leave the queue",
      async () => (await t.relay.spool.list()).length === 0,
    );
    // Nothing waits, runs or is scheduled any more: the deleted message cannot go out later.
    await until("an idle queue", () => t.relay.queue.pending === 0);
    assert.deepEqual(t.relay.queue.stats, { ready: 0, active: 0, deferred: 0 });
    assert.equal(sink.messages.length, 1, "the deleted message was never delivered");
    assert.deepEqual((await run(t, ["list", "--json"])).out, ["[]"]);

    assert.equal((await run(t, ["show", "not-an-id"])).code, 2);
    assert.equal((await run(t, ["delete", second])).code, 1);
    assert.equal((await run(t, ["retry", second])).code, 1);
    assert.equal((await run(t, ["frobnicate"])).code, 2);
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("relay queue: a spool of the old file format is named, not shown as empty", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_legacy_spool_" });
  try {
    await Deno.mkdir(join(dir, "queue"));
    const out: string[] = [];
    const code = await runQueueCommand(["list", "--spool", dir], configSchema.parse({}), {
      stdout: (line) => out.push(line),
      stderr: (line) => out.push(line),
    });
    assert.deepEqual({ code, out }, {
      code: 1,
      out: [
        `relay queue: ${dir} is a spool of an earlier version; start the relay once to import it`,
      ],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
