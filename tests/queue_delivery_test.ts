/**
 * The queue end to end: mail submitted to a real relay (in this process) is
 * delivered to an in-test backend, retried, bounced with a DSN, or put in
 * the dead-letter directory; per-recipient progress survives a restart.
 */
import { type Envelope, newQueueId } from "../src/mail/mod.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { MemoryAuditLog } from "../src/audit/mod.ts";
import { SmtpBackend } from "../src/delivery/mod.ts";
import {
  type DeliveryState,
  listDeadLetters,
  QueueManager,
  readState,
  Spool,
  writeState,
} from "../src/queue/mod.ts";
import { connectAs, connectClient, startTestRelay, type TestRelay } from "./support/relay.ts";
import { type SinkMessage, SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A relay delivering to `sink` with short retry delays. */
function relayTo(
  sink: SmtpSink,
  relay: Record<string, unknown> = {},
): Promise<TestRelay> {
  return startTestRelay({
    config: {
      relay: {
        url: `smtp://127.0.0.1:${sink.port}?tls=none`,
        retry_schedule: [0.2, 0.3],
        scan_interval: 0.1,
        pool_size: 2,
        ...relay,
      },
    },
  });
}

/** Submits one message as alice over SMTPS; resolves with the queue id. */
async function submit(t: TestRelay, to: string[], subject: string): Promise<string> {
  const client = await connectAs(t);
  try {
    const result = await client.send({
      from: "alice@example.com",
      to,
      data: encoder.encode(`Subject: ${subject}\r\nFrom: alice@example.com\r\n\r\nbody\r\n`),
    });
    assert.equal(result.final?.code, 250);
    return /queued as (\S+)/.exec(result.final!.lines[0])![1];
  } finally {
    await client.quit();
  }
}

function subjectOf(m: SinkMessage): string {
  return /^Subject: (.*)$/m.exec(decoder.decode(m.data))?.[1]?.trim() ?? "";
}

/** Splits a multipart body by its boundary; returns the parts (header + body text). */
function mimeParts(text: string): { headers: string; body: string }[] {
  const boundary = /boundary="([^"]+)"/.exec(text)?.[1];
  assert.ok(boundary, "multipart boundary");
  const pieces = text.split(`--${boundary}`);
  assert.ok(pieces[pieces.length - 1].startsWith("--"), "closing boundary");
  return pieces.slice(1, -1).map((p) => {
    const at = p.indexOf("\r\n\r\n");
    return { headers: p.slice(2, at), body: p.slice(at + 4) };
  });
}

Deno.test("queue: a message just accepted is delivered from memory; only a retry reads the spool", async () => {
  const sink = await SmtpSink.start();
  const t = await relayTo(sink, { retry_schedule: [3600] });
  try {
    for (let i = 0; i < 3; i++) await submit(t, ["bob@dest.org"], `in memory ${i}`);
    await sink.waitForMessages(3);
    await until("the spool to empty", async () => (await t.relay.spool.list()).length === 0);
    assert.equal(t.relay.spool.reads, 0, "the first attempts never read the spool back");
    // A deferred message is retried from the spool.
    sink.rcptReply = () => "451 4.2.0 try later";
    const id = await submit(t, ["carol@dest.org"], "retried");
    await until("a deferral", async () => (await readState(t.relay.spool, id)) !== null);
    assert.equal(t.relay.spool.reads, 0);
    sink.rcptReply = undefined;
    assert.equal(t.relay.queue.flush(id), 1);
    await sink.waitForMessages(4);
    assert.equal(subjectOf(sink.messages[3]), "retried");
    assert.equal(t.relay.spool.reads, 1);
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("queue: backend down when mail is accepted, delivered once it comes up", async () => {
  const sink = await SmtpSink.start();
  await sink.pause();
  const t = await relayTo(sink);
  try {
    const id = await submit(t, ["bob@dest.org"], "while down");
    await until("a deferral", async () => (await readState(t.relay.spool, id)) !== null);
    const state = await readState(t.relay.spool, id);
    assert.match(state!.lastError ?? "", /ConnectionRefused|refused/i);
    await sink.resume();
    await sink.waitForMessages(1);
    assert.equal(subjectOf(sink.messages[0]), "while down");
    await until("the spool to empty", async () => (await t.relay.spool.list()).length === 0);
    const events = t.audit.events.filter((e) => e.queue_id === id).map((e) => e.event);
    assert.ok(events.includes("message_deferred"));
    assert.equal(events[events.length - 1], "message_relayed");
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("queue: 4xx for a while is retried; a recipient accepted once is never sent again", async () => {
  const sink = await SmtpSink.start();
  const t = await relayTo(sink);
  try {
    let refusals = 0;
    sink.rcptReply = (rcpt) => {
      if (rcpt === "later@dest.org" && refusals < 2) {
        refusals++;
        return "451 4.2.0 mailbox busy, try later";
      }
      return undefined;
    };
    const id = await submit(t, ["now@dest.org", "later@dest.org"], "partly");
    await sink.waitForMessages(2);
    await until("the spool to empty", async () => (await t.relay.spool.list()).length === 0);
    assert.deepEqual(sink.messages.map((m) => m.recipients), [["now@dest.org"], [
      "later@dest.org",
    ]]);
    assert.equal(refusals, 2);
    const deferred = t.audit.events.filter((e) => e.event === "message_deferred");
    assert.deepEqual(deferred.map((e) => [e.queue_id, e.recipient, e.attempts]), [
      [id, "later@dest.org", 1],
      [id, "later@dest.org", 2],
    ]);
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("queue: connection dropped mid-DATA is retried and delivered once", async () => {
  const sink = await SmtpSink.start();
  const t = await relayTo(sink);
  try {
    sink.dropMidData = 1;
    await submit(t, ["bob@dest.org"], "dropped");
    await sink.waitForMessages(1);
    await until("the spool to empty", async () => (await t.relay.spool.list()).length === 0);
    assert.equal(sink.messages.length, 1);
    assert.equal(sink.count("DATA"), 2);
    assert.ok(sink.connections >= 2);
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("queue: 5xx returns a multipart/report DSN to the sender", async () => {
  const sink = await SmtpSink.start();
  const t = await relayTo(sink);
  try {
    sink.rcptReply = (rcpt) =>
      rcpt === "nobody@dest.org" ? "550 5.1.1 <nobody@dest.org>: no such user" : undefined;
    const id = await submit(t, ["ok@dest.org", "nobody@dest.org"], "half bounce");
    await sink.waitForMessages(2);
    await until("the spool to empty", async () => (await t.relay.spool.list()).length === 0);
    const [original, dsn] = sink.messages;
    assert.deepEqual(original.recipients, ["ok@dest.org"]);
    assert.equal(dsn.from, "", "DSNs have the null sender");
    assert.deepEqual(dsn.recipients, ["alice@example.com"]);
    const text = decoder.decode(dsn.data);
    assert.match(text, /^From: Mail Delivery System <MAILER-DAEMON@relay\.test>\r$/m);
    assert.match(text, /^To: <alice@example\.com>\r$/m);
    assert.match(text, /^Auto-Submitted: auto-replied\r$/m);
    assert.match(text, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    const parts = mimeParts(text);
    assert.equal(parts.length, 3);
    assert.match(parts[0].headers, /Content-Type: text\/plain/);
    assert.match(parts[0].body, /<nobody@dest\.org>: 550 5\.1\.1/);
    assert.match(parts[1].headers, /Content-Type: message\/delivery-status/);
    const [perMessage, perRecipient] = parts[1].body.split("\r\n\r\n");
    assert.match(perMessage, /^Reporting-MTA: dns; relay\.test$/m);
    assert.match(perMessage, new RegExp(`^X-Relay-Queue-ID: ${id}\\r?$`, "m"));
    assert.match(perMessage, /^Arrival-Date: \w{3}, \d+ \w{3} \d{4} /m);
    const fields = Object.fromEntries(
      perRecipient.split("\r\n").map((
        l,
      ) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]),
    );
    assert.equal(fields["Final-Recipient"], "rfc822; nobody@dest.org");
    assert.equal(fields["Action"], "failed");
    assert.equal(fields["Status"], "5.1.1");
    assert.equal(fields["Remote-MTA"], "dns; 127.0.0.1");
    assert.equal(fields["Diagnostic-Code"], "smtp; 550 5.1.1 <nobody@dest.org>: no such user");
    assert.match(parts[2].headers, /Content-Type: message\/rfc822/);
    assert.match(parts[2].body, /^Subject: half bounce\r$/m);
    assert.match(parts[2].body, /^Received: from /);
    const bounced = t.audit.events.find((e) => e.event === "message_bounced");
    assert.equal(bounced?.queue_id, id);
    assert.equal(bounced?.recipient, "nobody@dest.org");
    assert.ok(typeof bounced?.dsn_id === "string");
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("queue: per-sender-domain routes, and the DSN goes back the same route", async () => {
  const main = await SmtpSink.start();
  const company = await SmtpSink.start();
  const t = await relayTo(main, {
    routes: { "company.com": { url: `smtp://127.0.0.1:${company.port}?tls=none` } },
  });
  try {
    company.rcptReply = (rcpt) => rcpt.startsWith("gone@") ? "550 5.1.1 unknown" : undefined;
    const client = await connectClient(t);
    await client.auth({ username: "bob@company.com", password: "bob-secret-2" });
    await client.send({
      from: "bob@company.com",
      to: ["x@dest.org", "gone@dest.org"],
      data: encoder.encode("Subject: from company\r\n\r\nhi\r\n"),
    });
    await client.quit();
    await submit(t, ["y@dest.org"], "from example");
    await company.waitForMessages(2);
    await main.waitForMessages(1);
    assert.deepEqual(main.messages.map(subjectOf), ["from example"]);
    assert.deepEqual(company.messages.map((m) => [m.from, m.recipients]), [
      ["bob@company.com", ["x@dest.org"]],
      ["", ["bob@company.com"]],
    ]);
    const relayed = t.audit.events.filter((e) => e.event === "message_relayed");
    assert.ok(relayed.some((e) => String(e.via).startsWith("company.com smtp://127.0.0.1:")));
  } finally {
    await t.close();
    await main.close();
    await company.close();
  }
});

/** A manager on a spool of our own, for cases the SMTP front door cannot produce. */
async function withManager(
  sink: SmtpSink,
  fn: (ctx: {
    spool: Spool;
    dir: string;
    audit: MemoryAuditLog;
    put: (env: Partial<Envelope>, body: string) => Promise<string>;
    start: (now?: () => number, scanIntervalMs?: number) => Promise<QueueManager>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_queue_mgr_" });
  const spool = await Spool.open(join(dir, "spool"));
  const audit = new MemoryAuditLog();
  const backend = new SmtpBackend({
    route: "default",
    host: "127.0.0.1",
    port: sink.port,
    security: "none",
    display: `smtp://127.0.0.1:${sink.port}?tls=none`,
    ehloName: "relay.test",
    poolSize: 2,
  });
  const managers: QueueManager[] = [];
  try {
    await fn({
      spool,
      dir,
      audit,
      put: async (env, body) => {
        const id = newQueueId();
        const writer = spool.begin({
          v: 1,
          id,
          from: "alice@example.com",
          recipients: ["bob@dest.org"],
          receivedAt: new Date().toISOString(),
          client: { address: "127.0.0.1", helo: "test" },
          ...env,
        });
        writer.write(encoder.encode(body));
        await writer.commit();
        return id;
      },
      start: async (now, scanIntervalMs = 0) => {
        const manager = new QueueManager({
          spool,
          backend,
          audit,
          retrySchedule: [0.2],
          scanIntervalMs,
          hostname: "relay.test",
          now,
        });
        managers.push(manager);
        await manager.start();
        return manager;
      },
    });
  } finally {
    for (const m of managers) await m.stop();
    await backend.close();
    await spool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("queue: a null-sender failure and a DSN that fails go to the dead-letter directory", async () => {
  const sink = await SmtpSink.start();
  try {
    sink.rcptReply = () => "550 5.1.1 nobody here";
    await withManager(sink, async ({ spool, dir, put, start }) => {
      const nullSender = await put(
        { from: "", recipients: ["x@dest.org"] },
        "Subject: n\r\n\r\nb\r\n",
      );
      const bounced = await put({ recipients: ["y@dest.org"] }, "Subject: b\r\n\r\nb\r\n");
      await start();
      const dead = join(dir, "spool", "dead");
      let names: string[] = [];
      await until("two dead letters", () => {
        try {
          names = [...Deno.readDirSync(dead)].map((e) => e.name).sort();
        } catch { /* not yet */ }
        return names.filter((n) => n.endsWith(".json")).length === 2;
      });
      assert.ok(names.includes(`${nullSender}.msg`));
      const record = JSON.parse(await Deno.readTextFile(join(dead, `${nullSender}.json`)));
      assert.equal(record.recipients[0].recipient, "x@dest.org");
      assert.match(record.recipients[0].reply, /^550 5\.1\.1/);
      // The other dead letter is the DSN for `bounced`, which alice's server refused too.
      const dsnName = names.find((n) => n.endsWith(".msg") && !n.startsWith(nullSender))!;
      const dsnFile = decoder.decode(await Deno.readFile(join(dead, dsnName)));
      const dsnEnvelope = JSON.parse(dsnFile.slice(0, dsnFile.indexOf("\n")));
      assert.equal(dsnEnvelope.from, "");
      assert.deepEqual(dsnEnvelope.recipients, ["alice@example.com"]);
      assert.match(dsnFile, new RegExp(`X-Relay-Queue-ID: ${bounced}`));
      await until("an empty queue", async () => (await spool.list()).length === 0);
    });
  } finally {
    await sink.close();
  }
});

Deno.test("queue: a dead letter put back into queue/ is imported and delivered while the relay runs", async () => {
  const sink = await SmtpSink.start();
  try {
    sink.rcptReply = () => "550 5.1.1 nobody here";
    await withManager(sink, async ({ spool, dir, put, start }) => {
      const id = await put({ from: "", recipients: ["x@dest.org"] }, "Subject: again\r\n\r\nb\r\n");
      await start(undefined, 50);
      const dead = join(dir, "spool", "dead");
      await until("the dead letter", async () => (await listDeadLetters(dead)).includes(id));
      await until("an empty queue", async () => (await spool.list()).length === 0);
      // The recipient exists now; the operator moves the message back.
      sink.rcptReply = undefined;
      await Deno.mkdir(join(dir, "spool", "queue"));
      await Deno.rename(join(dead, `${id}.msg`), join(dir, "spool", "queue", `${id}.msg`));
      await sink.waitForMessages(1, 5000);
      assert.deepEqual(sink.messages[0].recipients, ["x@dest.org"]);
      assert.match(sink.texts()[0], /Subject: again/);
      await until("an empty queue", async () => (await spool.list()).length === 0);
      assert.deepEqual([...Deno.readDirSync(join(dir, "spool", "queue"))], []);
    });
  } finally {
    await sink.close();
  }
});

Deno.test("queue: giving up after max age returns a DSN with status 4.4.7", async () => {
  const sink = await SmtpSink.start();
  try {
    sink.rcptReply = (rcpt) => rcpt === "slow@dest.org" ? "451 4.4.1 not now" : undefined;
    await withManager(sink, async ({ spool, put, start }) => {
      const sixDaysAgo = new Date(Date.now() - 6 * 86400_000).toISOString();
      await put(
        { recipients: ["slow@dest.org"], receivedAt: sixDaysAgo },
        "Subject: old\r\n\r\nb\r\n",
      );
      await start();
      await sink.waitForMessages(1);
      const dsn = decoder.decode(sink.messages[0].data);
      assert.equal(sink.messages[0].from, "");
      assert.match(dsn, /^Final-Recipient: rfc822; slow@dest\.org\r$/m);
      assert.match(dsn, /^Action: failed\r$/m);
      assert.match(dsn, /^Status: 4\.4\.7\r$/m);
      assert.match(
        dsn,
        /^Diagnostic-Code: x-relay; message expired after 144 h in the queue; last error: 451 4\.4\.1 not now\r$/m,
      );
      await until("an empty queue", async () => (await spool.list()).length === 0);
    });
  } finally {
    await sink.close();
  }
});

Deno.test("queue: a restart resumes from the delivery state and skips recipients already done", async () => {
  const sink = await SmtpSink.start();
  try {
    await withManager(sink, async ({ spool, put, start, audit }) => {
      const id = await put(
        { recipients: ["done@dest.org", "todo@dest.org"] },
        "Subject: r\r\n\r\nb\r\n",
      );
      const state: DeliveryState = {
        attempts: 1,
        nextAttempt: new Date(Date.now() + 150).toISOString(),
        done: {
          "done@dest.org": { recipient: "done@dest.org", status: "delivered", reply: "250 ok" },
        },
        lastError: "451 4.3.0 later",
      };
      await writeState(spool, id, state);
      const manager = await start();
      assert.equal(manager.stats.deferred, 1, "waits for nextAttempt");
      await sink.waitForMessages(1);
      assert.deepEqual(sink.messages[0].recipients, ["todo@dest.org"]);
      await until("an empty queue", async () => (await spool.list()).length === 0);
      assert.equal(await readState(spool, id), null);
      assert.deepEqual(audit.events.map((e) => [e.event, e.recipient]), [[
        "message_relayed",
        "todo@dest.org",
      ]]);
    });
  } finally {
    await sink.close();
  }
});
