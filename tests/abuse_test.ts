/**
 * Protocol abuse, as Postfix's smtpd handles it: error replies are delayed
 * past a soft limit and the session ends at a hard limit; commands that do
 * no work (NOOP, RSET, VRFY...) count toward a junk limit; an AUTH flood
 * from one address is blocked while a user elsewhere still logs in
 * (slowloris: deadline_test.ts; lockouts: lockout_test.ts). The server keeps serving.
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import { connectTo, greeted, plain } from "./support/raw_client.ts";
import { connectAs, startTestRelay, type TestRelay } from "./support/relay.ts";

async function sendsNormally(t: TestRelay): Promise<void> {
  const c = await connectAs(t);
  try {
    const sent = await c.send({
      from: "alice@example.com",
      to: ["ok@example.net"],
      data: new TextEncoder().encode("Subject: still serving\r\n\r\nyes\r\n"),
    });
    assert.equal(sent.final?.code, 250);
  } finally {
    await c.quit();
  }
}

Deno.test("errors past the soft limit are delayed; the hard limit ends the session", async () => {
  const t = await startTestRelay({
    config: { limits: { soft_error_limit: 2, hard_error_limit: 4, error_delay_ms: 300 } },
  });
  try {
    const [c] = await connectTo(t, "submission");
    assert.equal((await c.command("FOO")).text, "500 5.5.2 Error: command not recognized");
    assert.equal((await c.command("BAR")).code, 500);
    // The third error is past the soft limit: its reply waits.
    const started = performance.now();
    assert.equal((await c.command("BAZ")).code, 500);
    assert.ok(performance.now() - started >= 250, "third error reply was not delayed");
    await c.send("QUX");
    const [last, bye] = await c.replies(2);
    assert.equal(last.code, 500);
    assert.equal(bye.text, "421 4.7.0 relay.test Error: too many errors");
    await c.expectEof();
    c.close();
    assert.ok(t.audit.events.some((e) => e.event === "security_too_many_errors"));
    await sendsNormally(t);
  } finally {
    await t.close();
  }
});

Deno.test("NOOP/RSET/VRFY without a message count toward the junk limit", async () => {
  const t = await startTestRelay({ config: { limits: { junk_command_limit: 4 } } });
  try {
    const c = await greeted(t, "submission"); // EHLO, STARTTLS, EHLO: two junk commands
    assert.equal((await c.command("NOOP")).code, 250);
    assert.equal((await c.command("RSET")).code, 250);
    await c.send("VRFY postmaster");
    const [vrfy, bye] = await c.replies(2);
    assert.equal(vrfy.code, 252);
    assert.equal(bye.text, "421 4.7.0 relay.test Error: too many commands without a message");
    await c.expectEof();
    c.close();
    await sendsNormally(t);
  } finally {
    await t.close();
  }
});

Deno.test("an AUTH flood from one address is blocked; a user on another address logs in", async () => {
  const t = await startTestRelay({
    config: { rate_limit: { enabled: true, per_minute: 5, per_hour: 50, block_seconds: 60 } },
  });
  try {
    // Guesses against many users from 127.0.0.1 trip the per-address limit.
    const flood = await greeted(t, "smtps");
    let blocked = null;
    for (let i = 0; i < 10 && blocked === null; i++) {
      await flood.send(`AUTH PLAIN ${plain(`user${i}@example.com`, "guess")}`);
      const reply = await flood.reply();
      if (reply.code === 421) blocked = reply;
      else {
        assert.equal(reply.code, 535);
        // A block that this failure set follows as a 421 at once; else NOOP's 250 comes next.
        await flood.send("NOOP");
        const next = await flood.reply();
        if (next.code === 421) blocked = next;
        else assert.equal(next.code, 250);
      }
    }
    assert.match(
      blocked!.text,
      /^421 4\.7\.0 Too many authentication failures, try again in \d+ seconds$/,
    );
    flood.close();
    // The same address is refused at once on a new connection...
    const again = await greeted(t, "smtps");
    assert.equal(
      (await again.command(`AUTH PLAIN ${plain("alice@example.com", "alice-secret-1")}`)).code,
      421,
    );
    again.close();
    // ...while alice on 127.0.0.2 logs in and sends.
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: t.smtpsPort,
      secure: true,
      localAddress: "127.0.0.2",
      auth: { user: "alice@example.com", pass: "alice-secret-1" },
      tls: { ca: [t.caPem], servername: "localhost" },
    });
    try {
      const info = await transport.sendMail({
        from: "alice@example.com",
        to: "x@example.net",
        subject: "other address",
        text: "hi",
      });
      assert.deepEqual(info.accepted, ["x@example.net"]);
    } finally {
      transport.close();
    }
    assert.ok(t.audit.events.some((e) => e.event === "rate_limit" && e.scope === "address"));
  } finally {
    await t.close();
  }
});
