/**
 * Configured limits as a client meets them: connections per address and in
 * total, the command timeout, message size after the dot and the recipient
 * count.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  authenticated,
  connectTo,
  GREETING,
  PORTS,
  queueId,
  type RawClient,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";
import { eventually, until } from "./support/until.ts";

/** Retries `attempt` until it resolves (the server notices closed sockets asynchronously). */

/**
 * A connection over a cap: on submission the 421 in plain text; on SMTPS
 * the socket is closed before any handshake (the client's handshake fails,
 * and the server audits the refusal, not a TLS failure).
 */
async function refusedBeforeTls(relay: TestRelay, reply: string): Promise<void> {
  const [c, refusal] = await connectTo(relay, "submission");
  strictEqual(refusal.text, reply);
  await c.expectEof();
  c.close();
  await rejects(connectTo(relay, "smtps"));
  const refusals = relay.audit.events.filter((e) => e.event === "rate_limit");
  ok(refusals.some((e) => e.port === "smtps" && e.reason === "connection_limit"));
  ok(!relay.audit.events.some((e) => e.event === "security_tls_failed"));
}

Deno.test("limits: max_connections_per_ip refuses the third connection with 421 4.7.0", async () => {
  const relay = await startTestRelay({ config: { limits: { max_connections_per_ip: 2 } } });
  const open: RawClient[] = [];
  try {
    const [a, ga] = await connectTo(relay, "submission");
    open.push(a);
    const [b, gb] = await connectTo(relay, "smtps");
    open.push(b);
    strictEqual(ga.text, GREETING);
    strictEqual(gb.text, GREETING);
    // Both listeners count against the same address, and refuse before any TLS work.
    await refusedBeforeTls(
      relay,
      "421 4.7.0 relay.test Error: too many connections from 127.0.0.1",
    );
    // The sessions inside the limit are unaffected.
    strictEqual((await a.command("NOOP")).text, "250 2.0.0 Ok");
    strictEqual((await b.command("NOOP")).text, "250 2.0.0 Ok");
    // Closing one frees a slot (the server notices the close asynchronously).
    a.close();
    const d = await eventually(async () => {
      const [client, reply] = await connectTo(relay, "smtps");
      if (reply.text !== GREETING) {
        client.close();
        throw new Error(reply.text);
      }
      return client;
    });
    open.push(d);
    strictEqual((await d.command("NOOP")).text, "250 2.0.0 Ok");
    const refusals = relay.audit.events.filter((e) => e.event === "rate_limit");
    ok(refusals.length >= 2);
  } finally {
    for (const c of open) c.close();
    await relay.close();
  }
});

Deno.test("limits: a refused client that never closes its side stops counting against its address", async () => {
  const relay = await startTestRelay({ config: { limits: { max_connections_per_ip: 1 } } });
  const open: RawClient[] = [];
  try {
    const [a, ga] = await connectTo(relay, "submission");
    open.push(a);
    strictEqual(ga.text, GREETING);
    const [b, refusal] = await connectTo(relay, "submission");
    open.push(b);
    strictEqual(refusal.text, "421 4.7.0 relay.test Error: too many connections from 127.0.0.1");
    await b.expectEof(); // b keeps its own side open
    a.close();
    const c = await eventually(async () => {
      const [client, reply] = await connectTo(relay, "submission");
      if (reply.text !== GREETING) {
        client.close();
        throw new Error(reply.text);
      }
      return client;
    });
    open.push(c);
    strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
  } finally {
    for (const c of open) c.close();
    await relay.close();
  }
});

Deno.test("limits: max_connections refuses past the total with 421 4.7.0", async () => {
  const relay = await startTestRelay({ config: { limits: { max_connections: 2 } } });
  const open: RawClient[] = [];
  try {
    const [a] = await connectTo(relay, "smtps");
    open.push(a);
    const [b] = await connectTo(relay, "submission");
    open.push(b);
    await refusedBeforeTls(relay, "421 4.7.0 relay.test Error: too many connections");
    // The sessions inside the limit are unaffected.
    strictEqual((await a.command("NOOP")).text, "250 2.0.0 Ok");
    strictEqual((await b.command("NOOP")).text, "250 2.0.0 Ok");
  } finally {
    for (const c of open) c.close();
    await relay.close();
  }
});

Deno.test("limits: an idle client gets 421 4.4.2 after the command timeout", async () => {
  const relay = await startTestRelay({ config: { limits: { command_timeout_seconds: 0.5 } } });
  try {
    for (const kind of PORTS) {
      const started = Date.now();
      const [c, greeting] = await connectTo(relay, kind);
      try {
        strictEqual(greeting.text, GREETING);
        strictEqual((await c.reply()).text, "421 4.4.2 relay.test Error: timeout exceeded");
        await c.expectEof();
        const waited = Date.now() - started;
        ok(waited >= 450 && waited < 3000, `timed out after ${waited} ms`);
      } finally {
        c.close();
      }
    }
    // A client that stops in the middle of an AUTH exchange is timed out too.
    const c = await authenticated(relay, "smtps").catch(() => null);
    ok(c, "a prompt client still gets through");
    try {
      strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
      strictEqual((await c.reply()).text, "421 4.4.2 relay.test Error: timeout exceeded");
      await c.expectEof();
    } finally {
      c.close();
    }
    const [d] = await connectTo(relay, "smtps");
    try {
      await d.command("EHLO client.example");
      strictEqual((await d.command("AUTH LOGIN")).text, "334 VXNlcm5hbWU6");
      strictEqual((await d.reply()).text, "421 4.4.2 relay.test Error: timeout exceeded");
      await d.expectEof();
    } finally {
      d.close();
    }
  } finally {
    await relay.close();
  }
});

Deno.test("limits: a message over max_message_bytes gets 552 after the dot and is not kept", async () => {
  const relay = await startTestRelay({ config: { limits: { max_message_bytes: 4096 } } });
  try {
    for (const kind of PORTS) {
      const c = await authenticated(relay, kind);
      try {
        const ehlo = await c.command("EHLO client.example");
        ok(ehlo.lines.includes("250-SIZE 4096"), ehlo.text);
        const big = `Subject: too big\r\n\r\n${"0123456789abcdef\r\n".repeat(400)}`;
        const reply = await transaction(c, {
          from: "alice@example.com",
          to: ["x@dest.example"],
          data: big,
        });
        strictEqual(reply.text, "552 5.3.4 Message size exceeds fixed maximum message size");
        // The session is still usable, and the transaction is gone.
        strictEqual(
          (await c.command("RCPT TO:<x@dest.example>")).text,
          "503 5.5.1 Error: need MAIL command",
        );
        // Exactly at the limit is fine (the Received header does not count).
        const head = "Subject: exactly\r\n\r\n";
        const exact = `${head}${"x".repeat(4096 - head.length - 2)}\r\n`;
        strictEqual(exact.length, 4096);
        const id = queueId(
          await transaction(c, { from: "alice@example.com", to: ["x@dest.example"], data: exact }),
        );
        await waitForMessage(relay.outbox, id);
        const one = `${head}${"x".repeat(4096 - head.length - 1)}\r\n`;
        strictEqual(
          (await transaction(c, { from: "alice@example.com", to: ["x@dest.example"], data: one }))
            .text,
          "552 5.3.4 Message size exceeds fixed maximum message size",
        );
      } finally {
        c.close();
      }
    }
    // Only the two messages at the limit arrived (both awaited above); the refused
    // ones were never committed, so nothing can follow them.
    strictEqual((await relay.outboxFiles()).length, 2);
    await until(
      "the delivered messages to leave the spool",
      async () => (await relay.relay.spool.list()).length === 0,
    );
    deepStrictEqual([...Deno.readDirSync(`${relay.config.spool.dir}/tmp`)], []);
  } finally {
    await relay.close();
  }
});

Deno.test("limits: recipients past max_recipients get 452 4.5.3; the rest are kept", async () => {
  const relay = await startTestRelay({ config: { limits: { max_recipients: 3 } } });
  try {
    for (const kind of PORTS) {
      const c = await authenticated(relay, kind);
      try {
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
        for (const n of [1, 2, 3]) {
          strictEqual((await c.command(`RCPT TO:<r${n}@dest.example>`)).text, "250 2.1.5 Ok");
        }
        strictEqual(
          (await c.command("RCPT TO:<r4@dest.example>")).text,
          "452 4.5.3 Error: too many recipients",
        );
        strictEqual(
          (await c.command("RCPT TO:<r5@dest.example>")).text,
          "452 4.5.3 Error: too many recipients",
        );
        strictEqual((await c.command("DATA")).text, "354 End data with <CR><LF>.<CR><LF>");
        await c.write("Subject: three\r\n\r\nhi\r\n");
        const id = queueId(await c.command("."));
        await waitForMessage(relay.outbox, id);
        const meta = JSON.parse(await Deno.readTextFile(`${relay.outbox}/${id}.json`));
        deepStrictEqual(meta.recipients, ["r1@dest.example", "r2@dest.example", "r3@dest.example"]);
      } finally {
        c.close();
      }
    }
  } finally {
    await relay.close();
  }
});
