/**
 * Greeting, EHLO/HELO, extension advertisement per port and TLS state,
 * STARTTLS (including the injection defence) and pipelining, asserted as
 * exact reply lines.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  authenticated,
  connectTo,
  greeted,
  GREETING,
  plain,
  PORTS,
  queueId,
  RawClient,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay } from "./support/relay.ts";

const BASE_EXTENSIONS = [
  "PIPELINING",
  "SIZE 26214400",
  "8BITMIME",
  "SMTPUTF8",
  "ENHANCEDSTATUSCODES",
];

/** The expected EHLO reply lines for `helo` with these extensions. */
function ehloLines(helo: string, extensions: string[]): string[] {
  const texts = [`relay.test Hello ${helo} [127.0.0.1]`, ...extensions];
  return texts.map((text, i) => `250${i === texts.length - 1 ? " " : "-"}${text}`);
}

Deno.test("greeting, EHLO and STARTTLS", async (t) => {
  const relay = await startTestRelay();
  try {
    await t.step("greeting is exact on both ports", async () => {
      for (const kind of PORTS) {
        const [c, greeting] = await connectTo(relay, kind);
        try {
          deepStrictEqual(greeting.lines, [GREETING]);
        } finally {
          c.close();
        }
      }
    });

    await t.step("plain submission: EHLO offers STARTTLS, never AUTH", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        const reply = await c.command("EHLO client.example");
        deepStrictEqual(reply.lines, ehloLines("client.example", [...BASE_EXTENSIONS, "STARTTLS"]));
        ok(!reply.text.includes("AUTH"));
      } finally {
        c.close();
      }
    });

    await t.step("submission after STARTTLS: AUTH offered, STARTTLS no longer", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        await c.starttls();
        const reply = await c.command("EHLO client.example");
        deepStrictEqual(
          reply.lines,
          ehloLines("client.example", [...BASE_EXTENSIONS, "AUTH PLAIN LOGIN"]),
        );
      } finally {
        c.close();
      }
    });

    await t.step("SMTPS: AUTH offered at once, STARTTLS never", async () => {
      const [c] = await connectTo(relay, "smtps");
      try {
        const reply = await c.command("EHLO client.example");
        deepStrictEqual(
          reply.lines,
          ehloLines("client.example", [...BASE_EXTENSIONS, "AUTH PLAIN LOGIN"]),
        );
      } finally {
        c.close();
      }
    });

    await t.step("after AUTH succeeds EHLO no longer lists AUTH", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          const reply = await c.command("EHLO again.example");
          deepStrictEqual(reply.lines, ehloLines("again.example", BASE_EXTENSIONS));
        } finally {
          c.close();
        }
      }
    });

    await t.step("HELO gets a single line", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          deepStrictEqual((await c.command("HELO client.example")).lines, ["250 relay.test"]);
        } finally {
          c.close();
        }
      }
    });

    await t.step("EHLO without a hostname is a syntax error", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          strictEqual((await c.command("EHLO")).text, "501 5.5.4 Syntax: EHLO hostname");
          strictEqual((await c.command("HELO")).text, "501 5.5.4 Syntax: HELO hostname");
          strictEqual((await c.command("HELO a b")).text, "501 5.5.4 Syntax: HELO hostname");
        } finally {
          c.close();
        }
      }
    });

    await t.step("STARTTLS with TLS already active: 554 5.5.1", async () => {
      const smtps = await greeted(relay, "smtps");
      const submission = await greeted(relay, "submission");
      try {
        for (const c of [smtps, submission]) {
          strictEqual((await c.command("STARTTLS")).text, "554 5.5.1 Error: TLS already active");
          strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
        }
      } finally {
        smtps.close();
        submission.close();
      }
    });

    await t.step("STARTTLS with an argument is a syntax error", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        strictEqual((await c.command("STARTTLS now")).text, "501 5.5.4 Syntax: STARTTLS");
      } finally {
        c.close();
      }
    });

    await t.step("STARTTLS injection: pipelined NOOP is discarded, never answered", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        await c.write("STARTTLS\r\nNOOP\r\n");
        deepStrictEqual((await c.reply()).lines, ["220 2.0.0 Ready to start TLS"]);
        // Nothing else came before the handshake (the client would refuse to start TLS).
        strictEqual(c.buffered.length, 0);
        await c.startTls();
        // Replies come in order: had the injected NOOP run, its 250 would come first.
        const reply = await c.command("EHLO client.example");
        strictEqual(reply.lines[0], "250-relay.test Hello client.example [127.0.0.1]");
        // An address literal is not repeated after itself.
        strictEqual(
          (await c.command("EHLO [127.0.0.1]")).lines[0],
          "250-relay.test Hello [127.0.0.1]",
        );
      } finally {
        c.close();
      }
    });

    await t.step("STARTTLS injection: an injected AUTH does not authenticate", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        await c.write(
          `STARTTLS\r\nEHLO evil\r\nAUTH PLAIN ${plain("alice@example.com", "alice-secret-1")}\r\n`,
        );
        strictEqual((await c.reply()).text, "220 2.0.0 Ready to start TLS");
        await c.startTls();
        // The first reply after the handshake is MAIL's: nothing injected was answered.
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com>")).text,
          "503 5.5.1 Error: send HELO/EHLO first",
        );
        await c.command("EHLO client.example");
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com>")).text,
          "530 5.7.0 Authentication required",
        );
      } finally {
        c.close();
      }
    });

    await t.step("EHLO is required again after STARTTLS, before MAIL and AUTH", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        await c.starttls();
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com>")).text,
          "503 5.5.1 Error: send HELO/EHLO first",
        );
        strictEqual(
          (await c.command(`AUTH PLAIN ${plain("alice@example.com", "alice-secret-1")}`)).text,
          "503 5.5.1 Error: send HELO/EHLO first",
        );
        await c.command("EHLO client.example");
        strictEqual(
          (await c.command(`AUTH PLAIN ${plain("alice@example.com", "alice-secret-1")}`)).text,
          "235 2.7.0 Authentication successful",
        );
      } finally {
        c.close();
      }
    });

    await t.step("STARTTLS before EHLO: 503, and the session continues", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        strictEqual((await c.command("STARTTLS")).text, "503 5.5.1 Error: send HELO/EHLO first");
        await c.command("EHLO client.example");
        await c.starttls();
        strictEqual((await c.command("EHLO client.example")).code, 250);
      } finally {
        c.close();
      }
    });

    await t.step("pipelining: EHLO MAIL RCPT RCPT DATA in one write, one batch back", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          const before = c.reads;
          await c.write(
            "EHLO client.example\r\nMAIL FROM:<alice@example.com>\r\n" +
              "RCPT TO:<one@dest.example>\r\nRCPT TO:<two@dest.example>\r\nDATA\r\n",
          );
          const replies = await c.replies(5);
          strictEqual(replies[0].code, 250);
          deepStrictEqual(replies.slice(1).map((r) => r.text), [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
          ]);
          // Replies to a pipelined group are written once (RFC 2920): one TLS record.
          strictEqual(c.reads - before, 1, `${kind}: replies arrived in ${c.reads - before} reads`);
          await c.write("Subject: pipelined\r\n\r\nbody\r\n");
          const id = queueId(await c.command("."));
          await waitForMessage(relay.outbox, id);
          // Messages pipelined back to back, with RSET and NOOP in between.
          await c.write(
            "RSET\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<x@dest.example>\r\nNOOP\r\nDATA\r\n",
          );
          deepStrictEqual((await c.replies(5)).map((r) => r.text), [
            "250 2.0.0 Ok",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.0.0 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
          ]);
          await c.write("Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n");
          queueId(await c.reply());
          strictEqual((await c.reply()).text, "221 2.0.0 Bye");
          await c.expectEof();
        } finally {
          c.close();
        }
      }
    });

    await t.step("pipelined errors are answered in order", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        await c.write(
          "MAIL FROM:<bob@company.com>\r\nRCPT TO:<x@dest.example>\r\nDATA\r\nNOOP\r\n",
        );
        deepStrictEqual((await c.replies(4)).map((r) => r.text), [
          "550 5.7.1 Domain mismatch: authenticated domain (example.com) does not match " +
          "MAIL FROM domain (company.com)",
          "503 5.5.1 Error: need MAIL command",
          "503 5.5.1 Error: need MAIL command",
          "250 2.0.0 Ok",
        ]);
      } finally {
        c.close();
      }
    });

    await t.step("a raw client can be opened directly", async () => {
      const c = await RawClient.connect({ port: relay.submissionPort });
      try {
        strictEqual((await c.reply()).text, GREETING);
        strictEqual((await c.command("QUIT")).text, "221 2.0.0 Bye");
        await c.expectEof();
      } finally {
        c.close();
      }
    });
  } finally {
    await relay.close();
  }
});
