/**
 * The 250 after DATA is a promise: the message is in the spool (renamed
 * into `queue/`, fsync'd) before the client hears it, and it survives a
 * restart of the relay on the same directories.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { MemoryAuditLog } from "../src/audit/mod.ts";
import { startRelay } from "../src/relay.ts";
import {
  authenticated,
  PORTS,
  queueId,
  splitReceived,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay } from "./support/relay.ts";
import { until } from "./support/until.ts";

const decoder = new TextDecoder();

Deno.test("spool: the message is on disk, whole, when the client hears 250", async () => {
  const relay = await startTestRelay({ start: { holdQueue: true } });
  try {
    for (const kind of PORTS) {
      const c = await authenticated(relay, kind);
      try {
        const data = `Subject: durable ${kind}\r\n\r\n${"payload line\r\n".repeat(20_000)}`;
        const id = queueId(
          await transaction(c, {
            from: "alice@example.com",
            to: ["x@dest.example", "y@dest.example"],
            data,
            mailParams: "BODY=8BITMIME",
          }),
        );
        // Checked right after the 250, before anything else can happen.
        ok((await relay.relay.spool.list()).includes(id), `${id} not in the spool at 250`);
        const { envelope, data: stored } = await relay.relay.spool.read(id);
        strictEqual(envelope.id, id);
        strictEqual(envelope.from, "alice@example.com");
        deepStrictEqual(envelope.recipients, ["x@dest.example", "y@dest.example"]);
        strictEqual(envelope.body, "8BITMIME");
        strictEqual(envelope.client.user, "alice@example.com");
        strictEqual(envelope.client.helo, "client.example");
        strictEqual(envelope.client.address, "127.0.0.1");
        ok(envelope.client.tls?.startsWith("TLSv1.3 "), envelope.client.tls);
        const { received, rest } = splitReceived(stored);
        ok(received.includes(`id ${id}`));
        strictEqual(decoder.decode(rest), data);
      } finally {
        c.close();
      }
    }
    // Held, so nothing was delivered; nothing is left half-written.
    strictEqual((await relay.outboxFiles()).length, 0);
    deepStrictEqual([...Deno.readDirSync(join(relay.config.spool.dir, "tmp"))], []);
  } finally {
    await relay.close();
  }
});

Deno.test("spool: a held message is delivered after a restart on the same directories", async () => {
  const relay = await startTestRelay({ start: { holdQueue: true } });
  try {
    const c = await authenticated(relay, "smtps");
    const data = "Subject: survives a restart\r\n\r\nstill here\r\n";
    let id: string;
    try {
      id = queueId(
        await transaction(c, { from: "alice@example.com", to: ["x@dest.example"], data }),
      );
    } finally {
      c.close();
    }
    await relay.relay.close(1000);
    strictEqual((await relay.outboxFiles()).length, 0);
    // A half-written file from the "crash" is cleared at start, never delivered.
    const tmp = join(relay.config.spool.dir, "tmp");
    await Deno.writeTextFile(join(tmp, "19C0000000000000000000"), "{half");

    const restarted = await startRelay(relay.config, { audit: new MemoryAuditLog() });
    try {
      const stored = await waitForMessage(relay.outbox, id);
      strictEqual(decoder.decode(splitReceived(stored).rest), data);
      strictEqual((await relay.outboxFiles()).length, 1);
      deepStrictEqual([...Deno.readDirSync(tmp)], []);
      // Delivered messages leave the spool.
      await until("the spool to empty", async () => (await restarted.spool.list()).length === 0);
    } finally {
      await restarted.close(500);
    }
  } finally {
    await relay.close();
  }
});
