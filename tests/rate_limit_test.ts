/**
 * Authentication rate limits and sending quotas, seen by SMTP clients:
 * exact replies, the audit events, and that one address being blocked does
 * not stop another user elsewhere.
 */
import assert from "node:assert/strict";
import { SmtpClient } from "../src/delivery/smtp_client.ts";
import { connectClient, startTestRelay } from "./support/relay.ts";

/** AUTH PLAIN with the raw reply (no exception on 4xx/5xx). */
async function plain(c: SmtpClient, user: string, password: string) {
  return await c.authRaw("PLAIN", new TextEncoder().encode(`\0${user}\0${password}`).toBase64());
}

Deno.test("AUTH failures are limited per user; a stale password counts once", async () => {
  const t = await startTestRelay({
    config: { rate_limit: { enabled: true, per_minute: 3, per_hour: 10, block_seconds: 60 } },
  });
  try {
    // The same wrong password again and again (a client with a stale password).
    for (let i = 0; i < 5; i++) {
      const c = await connectClient(t);
      const reply = await plain(c, "alice@example.com", "stale-password");
      assert.equal(reply.code, 535, `attempt ${i}`);
      await c.quit();
    }
    // A guesser with different passwords is blocked at the third failure
    // (the stale password counted once, the first guess is the second).
    const c = await connectClient(t);
    for (let i = 0; i < 1; i++) {
      assert.equal((await plain(c, "alice@example.com", `guess-${i}`)).code, 535);
    }
    await c.sendLine(
      "AUTH PLAIN " + new TextEncoder().encode("\0alice@example.com\0guess-x").toBase64(),
    );
    const failed = await c.readReply();
    assert.equal(failed.code, 535);
    const blocked = await c.readReply();
    assert.equal(blocked.code, 421);
    assert.equal(blocked.enhanced, "4.7.0");
    assert.match(
      blocked.lines[0],
      /^4\.7\.0 Too many authentication failures, try again in \d+ seconds$/,
    );
    c.close();
    // Now even the right password is refused for a while, before any verification.
    const again = await connectClient(t);
    const refused = await plain(again, "alice@example.com", "alice-secret-1");
    assert.equal(refused.code, 421);
    again.close();
    assert.ok(t.audit.events.some((e) => e.event === "rate_limit" && e.scope !== undefined));
  } finally {
    await t.close();
  }
});

Deno.test("sending quota per user: 451 4.7.1 once the hourly message count is used", async () => {
  const t = await startTestRelay({ config: { quota: { user_messages_per_hour: 2 } } });
  try {
    const c = await connectClient(t);
    assert.equal(
      (await c.auth({ username: "alice@example.com", password: "alice-secret-1" })).code,
      235,
    );
    for (let i = 0; i < 2; i++) {
      const sent = await c.send({
        from: "alice@example.com",
        to: ["r@example.net"],
        data: new TextEncoder().encode(`Subject: ${i}\r\n\r\nx\r\n`),
      });
      assert.equal(sent.final?.code, 250);
    }
    await c.sendLine("MAIL FROM:<alice@example.com>");
    const reply = await c.readReply();
    assert.equal(reply.code, 451);
    assert.match(
      reply.lines[0],
      /^4\.7\.1 Sending quota exceeded for alice@example\.com \(2 messages per hour\), try again in \d+ seconds$/,
    );
    await c.quit();
    assert.ok(t.audit.events.some((e) => e.event === "quota_exceeded" && e.scope === "user"));
    // Another user is not affected.
    const bob = await connectClient(t);
    assert.equal(
      (await bob.auth({ username: "bob@company.com", password: "bob-secret-2" })).code,
      235,
    );
    const sent = await bob.send({
      from: "bob@company.com",
      to: ["r@example.net"],
      data: new TextEncoder().encode("Subject: b\r\n\r\nx\r\n"),
    });
    assert.equal(sent.final?.code, 250);
    await bob.quit();
  } finally {
    await t.close();
  }
});
