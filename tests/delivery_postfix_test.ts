/**
 * Relaying to Postfix's `smtp-sink`, an SMTP server we did not write:
 * pipelined, pooled delivery with exact bytes, a 4xx period then delivery,
 * and the DSNs for a backend without 8BITMIME (5.6.3) and without SMTPUTF8
 * (5.6.7). Needs `smtp-sink` (see `tests/support/smtp_sink.ts` for the
 * install commands); skipped where it is missing, except in CI.
 */
import assert from "node:assert/strict";
import type { SmtpSendParams } from "../src/delivery/mod.ts";
import { smtpSinkInstalled, startPostfixSink } from "./support/smtp_sink.ts";
import { connectAs, startTestRelay, type TestRelay } from "./support/relay.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const installed = smtpSinkInstalled();
if (!installed && Deno.env.get("CI")) {
  throw new Error("smtp-sink is not installed: install postfix (see tests/support/smtp_sink.ts)");
}
const ignore = !installed;

function relayTo(port: number): Promise<TestRelay> {
  return startTestRelay({
    config: {
      relay: {
        url: `smtp://127.0.0.1:${port}?tls=none`,
        retry_schedule: [0.2],
        scan_interval: 0.1,
        pool_size: 2,
      },
    },
  });
}

async function submitAll(
  t: TestRelay,
  messages: { to: string[]; data: string; params?: SmtpSendParams }[],
): Promise<string[]> {
  const client = await connectAs(t);
  try {
    const ids: string[] = [];
    for (const m of messages) {
      const result = await client.send({
        from: "alice@example.com",
        to: m.to,
        data: encoder.encode(m.data),
        params: m.params,
      });
      assert.equal(result.final?.code, 250, JSON.stringify(result.final));
      ids.push(/queued as (\S+)/.exec(result.final!.lines[0])![1]);
    }
    return ids;
  } finally {
    await client.quit();
  }
}

/** The message as the relay sent it: our Received header dropped, LF line ends. */
function bodyAfterReceived(text: string): string {
  return text.replace(/^Received: [^\n]*\n(\t[^\n]*\n)*/, "");
}

Deno.test({
  name: "smtp-sink: 20 messages pipelined over pooled connections arrive byte for byte",
  ignore,
  async fn() {
    const sink = await startPostfixSink();
    const t = await relayTo(sink.port);
    try {
      const messages = Array.from({ length: 20 }, (_, i) => ({
        to: [`r${i}@dest.org`, `s${i}@dest.org`],
        data:
          `Subject: m${i}\r\nFrom: alice@example.com\r\n\r\n.dot first\r\n..two\r\nline ${i}\r\n`,
      }));
      await submitAll(t, messages);
      const got = await sink.waitForMessages(20);
      const bySubject = new Map(got.map((m) => [/^Subject: (\S+)$/m.exec(m.text)![1], m]));
      for (const [i, m] of messages.entries()) {
        const dumped = bySubject.get(`m${i}`)!;
        assert.deepEqual(dumped.recipients, m.to);
        assert.equal(dumped.mailArgs, "<alice@example.com>");
        assert.equal(bodyAfterReceived(dumped.text), m.data.replaceAll("\r\n", "\n"));
      }
    } finally {
      await t.close();
      await sink.close();
    }
  },
});

Deno.test({
  name: "smtp-sink: 4xx to every RCPT for a while, then delivered once it accepts",
  ignore,
  async fn() {
    const refusing = await startPostfixSink(["-r", "RCPT"]);
    const port = refusing.port;
    const t = await relayTo(port);
    let accepting;
    try {
      const [id] = await submitAll(t, [{
        to: ["bob@dest.org"],
        data: "Subject: soft\r\n\r\nx\r\n",
      }]);
      await until(
        "the message deferred",
        () => t.audit.events.some((e) => e.event === "message_deferred" && e.queue_id === id),
      );
      const deferred = t.audit.events.find((e) => e.event === "message_deferred")!;
      assert.match(String(deferred.reply), /^450 4\.3\.0/);
      await refusing.close();
      accepting = await startPostfixSink([], { port });
      const [got] = await accepting.waitForMessages(1);
      assert.deepEqual(got.recipients, ["bob@dest.org"]);
    } finally {
      await t.close();
      await refusing.close().catch(() => {});
      await accepting?.close();
    }
  },
});

Deno.test({
  name: "smtp-sink: no 8BITMIME → 5.6.3 DSN; no SMTPUTF8 → 5.6.7 DSN (7-bit, xtext address)",
  ignore,
  async fn() {
    const sink = await startPostfixSink(["-8"]);
    const t = await relayTo(sink.port);
    try {
      const [eightBit, utf8] = await submitAll(t, [
        {
          to: ["bob@dest.org"],
          data: "Subject: eight bit body\r\n\r\nna\u00efve caf\u00e9\r\n",
          params: { body8bit: true },
        },
        {
          to: ["j\u00fcrgen@dest.org"],
          data: "Subject: utf8\r\n\r\nhello\r\n",
          params: { smtputf8: true },
        },
      ]);
      const got = await sink.waitForMessages(2);
      assert.ok(got.every((m) => m.mailArgs === "<>"), "only the two DSNs arrive");
      assert.ok(got.every((m) => m.recipients[0] === "alice@example.com"));
      const dsn = (id: string) => got.find((m) => m.text.includes(`X-Relay-Queue-ID: ${id}`))!.text;
      const first = dsn(eightBit);
      assert.match(first, /^Final-Recipient: rfc822; bob@dest\.org$/m);
      assert.match(first, /^Status: 5\.6\.3$/m);
      assert.match(first, /^Content-Type: text\/rfc822-headers$/m, "8-bit body not returned");
      assert.match(first, /^Subject: eight bit body$/m);
      const second = dsn(utf8);
      assert.match(second, /^Final-Recipient: utf-8; j\\x\{FC\}rgen@dest\.org$/m);
      assert.match(second, /^Status: 5\.6\.7$/m);
      // Its Received: header names the recipient in UTF-8 (RFC 6531), which a
      // 7-bit DSN cannot carry: the report goes back without the message.
      assert.doesNotMatch(second, /^Content-Type: (message\/rfc822|text\/rfc822-headers)$/m);
      // Every byte that reached the 7-bit backend is ASCII.
      assert.ok(got.every((m) => !/[^\p{ASCII}]/u.test(m.text)));
    } finally {
      await t.close();
      await sink.close();
    }
  },
});
