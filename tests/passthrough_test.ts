/**
 * Pass-through mode (`relay.mode = "passthrough"`): the message is relayed to
 * the backend while the client sends it, and the client hears the backend's
 * own verdict. Recipients the backend defers are queued, never lost.
 */
import assert from "node:assert/strict";
import { SmtpSink } from "./support/sink.ts";
import { startTestRelay, submitAs } from "./support/relay.ts";
import { until } from "./support/until.ts";

Deno.test("pass-through: the client gets the backend's reply; deferred recipients are queued", async (t) => {
  const sink = await SmtpSink.start();
  const relay = await startTestRelay({
    config: {
      relay: {
        url: `smtp://127.0.0.1:${sink.port}?tls=none`,
        mode: "passthrough",
        retry_schedule: [3600],
      },
    },
  });
  try {
    await t.step(
      "accepted by the backend: its 250 is passed on, nothing stays queued",
      async () => {
        const result = await submitAs(relay, ["a@example.net"]);
        assert.equal(result.final?.code, 250);
        // The sink's own words, not ours ("Ok: queued as <ID>").
        assert.deepEqual(result.final?.lines, ["2.0.0 Ok: queued"]);
        assert.equal(sink.messages.length, 1);
        const text = new TextDecoder().decode(sink.messages[0].data);
        assert.match(text, /^Received: from /);
        assert.ok(text.endsWith("Subject: test\r\n\r\nhello\r\n"));
        assert.deepEqual(await relay.relay.spool.list(), []);
      },
    );

    await t.step("refused by the backend: the client gets its 5xx, nothing is queued", async () => {
      sink.dataReply = () => "554 5.7.1 content rejected by policy";
      const result = await submitAs(relay, ["b@example.net"]);
      assert.equal(result.final?.code, 554);
      assert.deepEqual(result.final?.lines, ["5.7.1 content rejected by policy"]);
      assert.deepEqual(await relay.relay.spool.list(), []);
    });

    await t.step("one recipient deferred: 250 queued, the message waits for it only", async () => {
      sink.dataReply = undefined;
      sink.rcptReply = (address) =>
        address.startsWith("later@") ? "451 4.2.0 mailbox busy, try later" : undefined;
      const before = sink.messages.length;
      const result = await submitAs(relay, ["now@example.net", "later@example.net"]);
      assert.equal(result.final?.code, 250);
      assert.match(result.final!.lines[0], /^2\.0\.0 Ok: queued as [0-9A-F]+$/);
      assert.equal(sink.messages.length, before + 1);
      assert.deepEqual(sink.messages.at(-1)!.recipients, ["now@example.net"]);
      const queued = await relay.relay.spool.list();
      assert.equal(queued.length, 1);
      // The retry will only be for the deferred recipient. The queue's own
      // first attempt may come before or after this point: either it defers
      // again (then retry now) or it delivers.
      sink.rcptReply = undefined;
      await until(
        "the deferred recipient to be retried",
        () => sink.messages.length >= before + 2 || relay.relay.queue.flush(queued[0]) > 0,
      );
      await sink.waitForMessages(before + 2);
      assert.deepEqual(sink.messages.at(-1)!.recipients, ["later@example.net"]);
    });
  } finally {
    await relay.close();
    await sink.close();
  }
});
