/**
 * `[audit] required = true`: while the audit trail cannot be written, new
 * mail is refused with 451 4.3.0 (at MAIL, and before the spool commit for a
 * transaction already under way); it flows again once the trail is back.
 */
import assert from "node:assert/strict";
import { MemoryAuditLog } from "../src/audit/mod.ts";
import { authenticated } from "./support/raw_client.ts";
import { startTestRelay } from "./support/relay.ts";

Deno.test("required audit trail down: 451 4.3.0 at MAIL and before the spool commit", async () => {
  const audit = new MemoryAuditLog();
  audit.required = true;
  const t = await startTestRelay({ start: { audit, holdQueue: true } });
  try {
    const c = await authenticated(t, "smtps");
    try {
      // A transaction started while the trail works...
      assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
      assert.equal((await c.command("RCPT TO:<x@example.net>")).code, 250);
      assert.equal((await c.command("DATA")).code, 354);
      // ...and the trail fails before the message is complete: nothing is spooled.
      audit.healthy = false;
      await c.write("Subject: x\r\n\r\nbody\r\n");
      assert.equal(
        (await c.command(".")).text,
        "451 4.3.0 Error: audit trail unavailable, try again later",
      );
      assert.deepEqual(await t.relay.spool.list(), []);
      assert.equal(
        (await c.command("MAIL FROM:<alice@example.com>")).text,
        "451 4.3.0 Error: audit trail unavailable, try again later",
      );
      audit.healthy = true;
      assert.equal((await c.command("MAIL FROM:<alice@example.com>")).code, 250);
    } finally {
      c.close();
    }
  } finally {
    await t.close();
  }
});
