/**
 * Hostile and broken clients: random bytes, huge lines, NUL bytes, TLS
 * garbage, silent clients and clients that vanish mid-DATA. After each
 * case a normal client must still get its message through, and nothing
 * of a failed message may stay in the spool or reach the outbox.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import {
  authenticated,
  connectTo,
  GREETING,
  PORTS,
  queueId,
  RawClient,
  splitReceived,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";
import { until } from "./support/until.ts";

const decoder = new TextDecoder();

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be replayed. */
function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A normal client sends a message and it arrives intact. */
async function normalSend(relay: TestRelay, tag: string): Promise<void> {
  const c = await authenticated(relay, "smtps");
  try {
    const data = `Subject: ${tag}\r\n\r\nstill serving\r\n`;
    const id = queueId(
      await transaction(c, { from: "alice@example.com", to: ["x@dest.example"], data }),
    );
    const { rest } = splitReceived(await waitForMessage(relay.outbox, id));
    strictEqual(decoder.decode(rest), data);
  } finally {
    c.close();
  }
}

async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names;
}

Deno.test("bad input: the server survives hostile clients", async (t) => {
  const relay = await startTestRelay();
  // A message over 256 KiB streams to a file of its own in spool/bodies while it arrives.
  const bodiesDir = join(relay.config.spool.dir, "bodies");
  try {
    await t.step("64 KiB of random bytes, then a normal client works", async () => {
      for (const [i, kind] of PORTS.entries()) {
        const [c] = await connectTo(relay, kind);
        try {
          await c.writeIgnoringClose(randomBytes(64 * 1024, 0x5eed + i));
          // Whatever came back, the server ends the session (too many errors) or keeps it.
          await c.writeIgnoringClose("\r\nQUIT\r\n");
          // Only well-formed replies came back (errors, perhaps a final 421 or 521).
          const text = await c.readAll();
          for (const line of text.split("\r\n").filter((l) => l !== "")) {
            ok(/^(250|221|354|421|500|501|502|503|521|530|554|555) /.test(line), line.slice(0, 80));
          }
        } finally {
          c.close();
        }
      }
      await normalSend(relay, "after random bytes");
    });

    await t.step("random bytes inside an authenticated TLS session", async () => {
      const c = await authenticated(relay, "submission");
      try {
        await c.writeIgnoringClose(randomBytes(64 * 1024, 42));
        await c.writeIgnoringClose("\r\nQUIT\r\n");
        await c.readAll();
      } finally {
        c.close();
      }
      await normalSend(relay, "after random bytes in TLS");
    });

    await t.step("random bytes instead of a TLS ClientHello on SMTPS", async () => {
      const c = await RawClient.connect({ port: relay.smtpsPort });
      try {
        await c.writeIgnoringClose(randomBytes(4096, 7));
        // At most a TLS alert comes back, never SMTP.
        const text = await c.readAll().catch(() => "");
        ok(!/\d{3} /.test(text), text);
      } finally {
        c.close();
      }
      await normalSend(relay, "after TLS garbage");
    });

    await t.step("a 1 MiB line: one 500 5.5.2, and the session goes on", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          await c.command("MAIL FROM:<alice@example.com>");
          await c.write(`RCPT TO:<${"x".repeat(1024 * 1024)}@dest.example>\r\n`);
          strictEqual((await c.reply()).text, "500 5.5.2 Error: line too long");
          // Exactly one reply for the whole line, then the transaction continues.
          strictEqual((await c.command("RCPT TO:<y@dest.example>")).text, "250 2.1.5 Ok");
          strictEqual((await c.command("DATA")).code, 354);
          await c.write("Subject: after a huge line\r\n\r\nok\r\n");
          queueId(await c.command("."));
        } finally {
          c.close();
        }
      }
      // A huge line without any line end, then the end: still one reply.
      const c = await authenticated(relay, "smtps");
      try {
        for (let i = 0; i < 16; i++) await c.write("y".repeat(64 * 1024));
        await c.write("\r\nNOOP\r\n");
        deepStrictEqual((await c.replies(2)).map((r) => r.text), [
          "500 5.5.2 Error: line too long",
          "250 2.0.0 Ok",
        ]);
      } finally {
        c.close();
      }
      await normalSend(relay, "after a huge line");
    });

    await t.step("NUL bytes and invalid UTF-8 in a command: 500 5.5.2", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          await c.write("EHLO client\0.example\r\n");
          strictEqual(
            (await c.reply()).text,
            "500 5.5.2 Error: command contains NUL or non-ASCII bytes",
          );
          await c.write(new Uint8Array([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xff, 0xfe, 13, 10]));
          strictEqual(
            (await c.reply()).text,
            "500 5.5.2 Error: command contains NUL or non-ASCII bytes",
          );
          await c.write("NOOP\0\r\n");
          strictEqual((await c.reply()).code, 500);
          await c.write("\x1b[A\r\n");
          strictEqual((await c.reply()).code, 500);
          strictEqual((await c.command("EHLO client.example")).code, 250);
        } finally {
          c.close();
        }
      }
      await normalSend(relay, "after NUL bytes");
    });

    await t.step("AUTH with broken base64 keeps the session usable", async () => {
      const c = await connectTo(relay, "smtps").then(([client]) => client);
      try {
        await c.command("EHLO client.example");
        strictEqual((await c.command("AUTH PLAIN ====")).text, "501 5.5.2 Cannot decode response");
        strictEqual((await c.command("AUTH PLAIN \u00e9t\u00e9")).code, 501);
        strictEqual((await c.command("AUTH LOGIN")).text, "334 VXNlcm5hbWU6");
        await c.write(new Uint8Array([0xff, 0x00, 0x41, 13, 10]));
        strictEqual((await c.reply()).text, "501 5.5.2 Cannot decode response");
        strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
      } finally {
        c.close();
      }
      await normalSend(relay, "after broken base64");
    });

    await t.step("plaintext sent after STARTTLS, before the handshake, never runs", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        await c.write("STARTTLS\r\nMAIL FROM:<alice@example.com>\r\nRSET\r\nQUIT\r\n");
        strictEqual((await c.reply()).text, "220 2.0.0 Ready to start TLS");
        await c.startTls();
        // Replies come in order: the first after the handshake is the NOOP's own.
        strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
      } finally {
        c.close();
      }
      // A client that speaks plaintext where the TLS handshake should be is dropped.
      const [d] = await connectTo(relay, "submission");
      try {
        await d.command("EHLO client.example");
        strictEqual((await d.command("STARTTLS")).text, "220 2.0.0 Ready to start TLS");
        await d.writeIgnoringClose("EHLO not-tls\r\n");
        const text = await d.readAll().catch(() => "");
        ok(!/\d{3} /.test(text), text);
      } finally {
        d.close();
      }
      await normalSend(relay, "after STARTTLS abuse");
    });

    await t.step("thousands of pipelined commands are all answered in order", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        // MAIL/RSET pairs: real work, so the junk-command limit (NOOPs) does not apply.
        const n = 5000;
        await c.write("MAIL FROM:<alice@example.com>\r\nRSET\r\n".repeat(n / 2) + "NOOP\r\n");
        const replies = await c.replies(n + 1);
        ok(
          replies.slice(0, n).every((r, i) =>
            r.text === (i % 2 === 0 ? "250 2.1.0 Ok" : "250 2.0.0 Ok")
          ),
        );
        strictEqual(replies[n].text, "250 2.0.0 Ok");
        strictEqual(c.buffered.length, 0);
      } finally {
        c.close();
      }
    });

    await t.step("a client that disconnects mid-DATA leaves nothing behind", async () => {
      const before = (await relay.outboxFiles()).length;
      // Small: still in memory when the client goes.
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          await c.command("MAIL FROM:<alice@example.com>");
          await c.command("RCPT TO:<x@dest.example>");
          strictEqual((await c.command("DATA")).code, 354);
          await c.write("Subject: vanish-marker\r\n\r\nhalf a messa");
        } finally {
          c.close();
        }
      }
      // Large: the message is streaming into its body file when the client goes.
      const c = await authenticated(relay, "smtps");
      try {
        await c.command("MAIL FROM:<alice@example.com>");
        await c.command("RCPT TO:<x@dest.example>");
        strictEqual((await c.command("DATA")).code, 354);
        await c.write(`Subject: vanish-marker\r\n\r\n${"z".repeat(76)}\r\n`.repeat(8000));
        await until("the body file", async () => (await listDir(bodiesDir)).length > 0);
      } finally {
        c.close();
      }
      await until("spool/bodies to empty", async () => (await listDir(bodiesDir)).length === 0);
      await normalSend(relay, "after vanishing clients");
      strictEqual((await relay.outboxFiles()).length, before + 1);
      deepStrictEqual(await listDir(bodiesDir), []);
      await until("the queue to drain", async () => (await relay.relay.spool.list()).length === 0);
    });

    await t.step("no message of a failed client reached the outbox", async () => {
      for (const file of await relay.outboxFiles()) {
        const text = decoder.decode(await Deno.readFile(file));
        ok(!text.includes("vanish-marker"), file);
      }
    });
  } finally {
    await relay.close();
  }
});

Deno.test("bad input: silent clients are timed out", async () => {
  const relay = await startTestRelay({
    config: { limits: { command_timeout_seconds: 0.3 }, tls: { handshake_timeout_seconds: 0.3 } },
  });
  try {
    for (const kind of PORTS) {
      const [c, greeting] = await connectTo(relay, kind);
      try {
        strictEqual(greeting.text, GREETING);
        strictEqual((await c.reply()).text, "421 4.4.2 relay.test Error: timeout exceeded");
        await c.expectEof();
      } finally {
        c.close();
      }
    }
    // A client that never starts the TLS handshake on SMTPS is dropped without a word.
    const c = await RawClient.connect({ port: relay.smtpsPort });
    try {
      const started = Date.now();
      strictEqual(await c.readAll(), "");
      ok(Date.now() - started < 3000);
    } finally {
      c.close();
    }
    await normalSend(relay, "after silent clients");
  } finally {
    await relay.close();
  }
});

Deno.test("bad input: a client silent mid-DATA is timed out and its message dropped", async () => {
  const relay = await startTestRelay({ config: { limits: { data_timeout_seconds: 0.3 } } });
  try {
    const c = await authenticated(relay, "smtps");
    try {
      await c.command("MAIL FROM:<alice@example.com>");
      await c.command("RCPT TO:<x@dest.example>");
      strictEqual((await c.command("DATA")).code, 354);
      await c.write("Subject: stalled\r\n\r\nand then noth");
      strictEqual(
        (await c.reply()).text,
        "421 4.4.2 relay.test Error: timeout exceeded during DATA",
      );
      await c.expectEof();
    } finally {
      c.close();
    }
    await normalSend(relay, "after a stalled DATA");
    strictEqual((await relay.outboxFiles()).length, 1);
    deepStrictEqual(await listDir(join(relay.config.spool.dir, "tmp")), []);
  } finally {
    await relay.close();
  }
});
