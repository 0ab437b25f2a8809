/**
 * Exactly-once submission: every side path either delivers once and answers
 * 250, or delivers nothing and answers a refusal the client can act on.
 * Pass-through with partly refused recipients, the audit gate before the
 * backend's final dot, restarts after a partly relayed message, quota
 * reservations under parallel sessions, a full spool disk, and the replies
 * and log lines around them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { MemoryAuditLog } from "../src/audit/mod.ts";
import type { SessionPolicy } from "../src/smtp/mod.ts";
import { authenticated, queueId, type RawClient } from "./support/raw_client.ts";
import { startTestRelay, submitAs } from "./support/relay.ts";
import { SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function passthroughTo(sink: SmtpSink, extra: Record<string, unknown> = {}) {
  return {
    relay: {
      url: `smtp://127.0.0.1:${sink.port}?tls=none`,
      mode: "passthrough",
      retry_schedule: [3600],
      ...extra,
    },
  };
}

Deno.test("pass-through: one recipient delivered, one refused: 250, delivered once, the refused one bounced", async () => {
  const sink = await SmtpSink.start();
  sink.rcptReply = (address) =>
    address.startsWith("gone@") ? "550 5.1.1 <gone@example.net>: no such user" : undefined;
  const t = await startTestRelay({ config: passthroughTo(sink) });
  try {
    const result = await submitAs(t, ["kept@example.net", "gone@example.net"]);
    assert.equal(result.final?.code, 250, "the client must not resend: kept@ has it");
    assert.match(result.final!.lines[0], /^2\.0\.0 Ok: queued as [0-9A-F]+$/);
    // The queue returns the refusal to the sender, without asking the backend again.
    await sink.waitForMessages(2);
    const [message, dsn] = sink.messages;
    assert.deepEqual(message.recipients, ["kept@example.net"]);
    assert.equal(dsn.from, "");
    assert.deepEqual(dsn.recipients, ["alice@example.com"]);
    const report = decoder.decode(dsn.data);
    assert.match(report, /^Final-Recipient: rfc822; gone@example\.net$/m);
    assert.match(report, /^Status: 5\.1\.1$/m);
    assert.equal(sink.count("RCPT"), 3, "kept@, gone@ once, and the DSN's recipient");
    await until("the queue to empty", async () => (await t.relay.spool.list()).length === 0);
    const bounced = t.audit.events.filter((e) => e.event === "message_bounced");
    assert.ok(bounced.some((e) => e.recipient === "gone@example.net"));
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("pass-through: every recipient refused: the backend's 5xx is passed on, nothing queued", async () => {
  const sink = await SmtpSink.start();
  sink.rcptReply = () => "550 5.1.1 no such user";
  const t = await startTestRelay({ config: passthroughTo(sink) });
  try {
    const result = await submitAs(t, ["a@example.net", "b@example.net"]);
    assert.equal(result.final?.code, 550);
    assert.deepEqual(await t.relay.spool.list(), []);
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("pass-through with a required audit trail down: the backend never gets the final dot", async () => {
  const sink = await SmtpSink.start();
  const audit = new MemoryAuditLog();
  audit.required = true;
  const t = await startTestRelay({ config: passthroughTo(sink), start: { audit } });
  try {
    const c = await authenticated(t, "smtps");
    try {
      assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
      assert.equal((await c.command("RCPT TO:<first@example.net>")).code, 250);
      assert.equal((await c.command("DATA")).code, 354);
      await c.write("Subject: refused\r\n\r\nbody\r\n");
      audit.healthy = false; // the trail fails while the message streams to the backend
      assert.equal(
        (await c.command(".")).text,
        "451 4.3.0 Error: audit trail unavailable, try again later",
      );
      audit.healthy = true;
      assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
      assert.equal((await c.command("RCPT TO:<second@example.net>")).code, 250);
      assert.equal((await c.command("DATA")).code, 354);
      await c.write("Subject: accepted\r\n\r\nbody\r\n");
      assert.equal((await c.command(".")).code, 250);
    } finally {
      c.close();
    }
    // The backend has the second message; the first never reached it.
    await sink.waitForMessages(1);
    assert.deepEqual(sink.messages.map((m) => m.recipients), [["second@example.net"]]);
    // The second is removed once delivered; the first was never spooled.
    await until("the queue to empty", async () => (await t.relay.spool.list()).length === 0);
  } finally {
    await t.close();
    await sink.close();
  }
});

Deno.test("pass-through partly relayed: after a restart only the deferred recipient is tried", async () => {
  const sink = await SmtpSink.start();
  sink.rcptReply = (address) => address.startsWith("later@") ? "451 4.2.0 busy" : undefined;
  const spoolDir = await Deno.makeTempDir({ prefix: "relay-spool-" });
  try {
    const first = await startTestRelay({
      config: { ...passthroughTo(sink), spool: { dir: spoolDir } },
    });
    try {
      const result = await submitAs(first, ["now@example.net", "later@example.net"]);
      assert.equal(result.final?.code, 250);
      await sink.waitForMessages(1);
      assert.deepEqual(sink.messages[0].recipients, ["now@example.net"]);
    } finally {
      await first.close();
    }
    sink.rcptReply = undefined;
    const second = await startTestRelay({
      config: { ...passthroughTo(sink), spool: { dir: spoolDir } },
    });
    try {
      // Found at start with its state: waiting for its retry time; retry now.
      assert.equal(second.relay.queue.flush(), 1);
      await sink.waitForMessages(2);
      assert.deepEqual(sink.messages[1].recipients, ["later@example.net"]);
      await until("the queue to empty", async () => (await second.relay.spool.list()).length === 0);
      assert.equal(sink.messages.length, 2, "now@ got it once");
    } finally {
      await second.close();
    }
  } finally {
    await sink.close();
    await Deno.remove(spoolDir, { recursive: true });
  }
});

Deno.test("quota: parallel sessions of one user get no more than the quota; RSET gives it back", async () => {
  const t = await startTestRelay({
    config: { quota: { user_messages_per_hour: 2 } },
    start: { holdQueue: true },
  });
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      clients.push(await authenticated(t, i % 2 ? "smtps" : "submission"));
    }
    const replies = await Promise.all(
      clients.map((c) => c.command("MAIL FROM:<alice@example.com>")),
    );
    const codes = replies.map((r) => r.code).sort();
    assert.deepEqual(codes, [250, 250, 451, 451]);
    const refused = replies.find((r) => r.code === 451)!;
    assert.match(refused.text, /^451 4\.7\.1 Sending quota exceeded for alice@example\.com/);
    // The two holders give their reservations back; two others may now start.
    const holders = clients.filter((_, i) => replies[i].code === 250);
    const waiting = clients.filter((_, i) => replies[i].code !== 250);
    for (const c of holders) assert.equal((await c.command("RSET")).code, 250);
    for (const c of waiting) {
      assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
    }
    assert.equal((await holders[0].command("MAIL FROM:<alice@example.com>")).code, 451);
  } finally {
    for (const c of clients) c.close();
    await t.close();
  }
});

Deno.test("quota: a client that goes away mid-transaction gives its reservation back", async () => {
  const t = await startTestRelay({
    config: { quota: { user_messages_per_hour: 1 } },
    start: { holdQueue: true },
  });
  try {
    const gone = await authenticated(t, "smtps");
    assert.equal((await gone.command("MAIL FROM:<alice@example.com>")).code, 250);
    gone.close();
    const next = await authenticated(t, "smtps");
    try {
      let reply = "";
      await until("the reservation to come back", async () => {
        reply = (await next.command("MAIL FROM:<alice@example.com>")).text;
        if (reply.startsWith("451")) return false;
        return true;
      });
      assert.equal(reply, "250 2.1.0 Ok");
    } finally {
      next.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test({
  name: "a full spool disk answers 452 4.3.1, keeps nothing, and recovers",
  // Mounting a small tmpfs needs root (as in CI).
  ignore: Deno.uid() !== 0,
  async fn() {
    const spoolDir = await Deno.makeTempDir({ prefix: "relay-full-" });
    const mount = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=256k", "tmpfs", spoolDir],
    });
    assert.equal((await mount.output()).code, 0, "mount tmpfs");
    try {
      const t = await startTestRelay({
        config: { spool: { dir: spoolDir } },
        start: { holdQueue: true },
      });
      try {
        const filler = join(spoolDir, "filler");
        const file = await Deno.open(filler, { write: true, create: true });
        const block = new Uint8Array(16 * 1024);
        try {
          for (;;) await file.write(block);
        } catch { /* full */ }
        file.close();
        const result = await submitAs(t, ["bob@example.net"]);
        assert.equal(
          `${result.final?.code} ${result.final?.lines[0]}`,
          "452 4.3.1 Error: insufficient system storage, try again later",
        );
        assert.deepEqual(await t.relay.spool.list(), []);
        assert.deepEqual([...Deno.readDirSync(join(spoolDir, "tmp"))], []);
        await Deno.remove(filler);
        const again = await submitAs(t, ["bob@example.net"]);
        assert.equal(again.final?.code, 250);
      } finally {
        await t.close();
      }
    } finally {
      await new Deno.Command("umount", { args: [spoolDir] }).output();
      await Deno.remove(spoolDir, { recursive: true });
    }
  },
});

Deno.test("RCPT TO:<Postmaster> is accepted and goes to server.postmaster", async () => {
  for (
    const [config, expected] of [[{}, "postmaster@relay.test"], [
      { postmaster: "ops@example.com" },
      "ops@example.com",
    ]] as const
  ) {
    const t = await startTestRelay({ config: { server: config } });
    try {
      const c = await authenticated(t, "smtps");
      try {
        assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
        assert.equal((await c.command("RCPT TO:<Postmaster>")).text, "250 2.1.5 Ok");
        assert.equal((await c.command("DATA")).code, 354);
        await c.write("Subject: to the postmaster\r\n\r\nhello\r\n");
        const id = queueId(await c.command("."));
        await t.waitForOutbox(1);
        await until(
          "the outbox metadata",
          () => Deno.stat(`${t.outbox}/${id}.json`).then(() => true, () => false),
        );
        const meta = JSON.parse(await Deno.readTextFile(`${t.outbox}/${id}.json`));
        assert.deepEqual(meta.recipients, [expected]);
      } finally {
        c.close();
      }
    } finally {
      await t.close();
    }
  }
});

Deno.test("Received: for an SMTPUTF8 transaction says UTF8SMTPSA and keeps the UTF-8 address", async () => {
  const t = await startTestRelay();
  try {
    const c = await authenticated(t, "smtps");
    try {
      assert.equal((await c.command("MAIL FROM:<alice@example.com> SMTPUTF8")).code, 250);
      assert.equal((await c.command("RCPT TO:<jürgen@bücher.example>")).code, 250);
      assert.equal((await c.command("DATA")).code, 354);
      await c.write("Subject: utf8\r\n\r\nhello\r\n");
      const id = queueId(await c.command("."));
      const [file] = await t.waitForOutbox(1);
      assert.ok(file.endsWith(`${id}.eml`));
      const text = decoder.decode(await Deno.readFile(file));
      assert.match(text, / with UTF8SMTPSA id /);
      assert.match(text, /\tfor <jürgen@bücher\.example>;/);
    } finally {
      c.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("an internal error is 421 4.3.0 and the connection closes; the server keeps serving", async () => {
  const t = await startTestRelay({
    start: {
      policy: (standard): SessionPolicy => ({
        ...standard,
        mail: (client, identity, sender, params) =>
          sender.startsWith("boom@")
            ? Promise.reject(new Error("policy bug"))
            : standard.mail(client, identity, sender, params),
      }),
    },
  });
  try {
    const c = await authenticated(t, "smtps");
    try {
      assert.equal(
        (await c.command("MAIL FROM:<boom@example.com>")).text,
        "421 4.3.0 relay.test Error: local error in processing, closing connection",
      );
      await c.expectEof();
    } finally {
      c.close();
    }
    const result = await submitAs(t, ["bob@example.net"]);
    assert.equal(result.final?.code, 250);
  } finally {
    await t.close();
  }
});

Deno.test("the operator log has a reject line per refusal and one disconnect line per session", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["relay"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  const t = await startTestRelay();
  try {
    const c = await authenticated(t, "smtps");
    assert.equal((await c.command("MAIL FROM:<alice@other.example>")).code, 550);
    assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
    assert.equal((await c.command("RCPT TO:<bö@example.net>")).code, 553);
    assert.equal((await c.command("QUIT")).code, 221);
    await c.expectEof();
    c.close();
    const text = (r: LogRecord) =>
      r.message.map((part) => typeof part === "string" ? part : String(part)).join("");
    await until("the disconnect line", () => records.some((r) => text(r).startsWith("disconnect")));
    const lines = records.map(text);
    assert.ok(
      lines.some((l) => /^reject: MAIL from \[127\.0\.0\.1\]: 550 5\.7\.1 Domain mismatch/.test(l)),
      lines.join("\n"),
    );
    assert.ok(
      lines.includes(
        "disconnect from [127.0.0.1] ehlo=1 auth=1 mail=1/2 rcpt=0/1 quit=1 commands=4/6",
      ),
      lines.join("\n"),
    );
    // 553/554 refusals go to the audit trail too.
    const refused = t.audit.events.filter((e) => e.event === "smtp_refused");
    assert.deepEqual(refused.map((e) => [e.command, e.code, e.status]), [["RCPT", 553, "5.6.7"]]);
  } finally {
    await t.close();
    await reset();
  }
});

Deno.test("an SMTPS handshake that fails is logged and audited", async () => {
  const t = await startTestRelay();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: t.smtpsPort });
    await conn.write(encoder.encode("EHLO plain.text.client\r\n"));
    const buf = new Uint8Array(1024);
    while ((await conn.read(buf).catch(() => null)) !== null) { /* until closed */ }
    conn.close();
    await until(
      "the audit event",
      () => t.audit.events.some((e) => e.event === "security_tls_failed"),
    );
    const event = t.audit.events.find((e) => e.event === "security_tls_failed")!;
    assert.equal(event.listener, "smtps");
    assert.equal(event.ip, "127.0.0.1");
  } finally {
    await t.close();
  }
});
