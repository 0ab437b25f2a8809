/**
 * The compliance list (RFC 5321, 3207, 4954, 6409, 2920, 6152, 6531, 3463):
 * one named step per behaviour a client relies on, each asserting exact
 * replies and, for messages, the exact bytes that reach the outbox.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import {
  authenticated,
  connectTo,
  greeted,
  GREETING,
  plain,
  PORTS,
  queueId,
  type RawClient,
  splitReceived,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay } from "./support/relay.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ALICE = plain("alice@example.com", "alice-secret-1");

Deno.test("compliance", async (t) => {
  const relay = await startTestRelay();

  /** Sends `data` (already dot-stuffed) from alice and returns the stored bytes after Received. */
  const roundTrip = async (
    c: RawClient,
    data: string | Uint8Array,
    options: { to?: string[]; mailParams?: string } = {},
  ): Promise<{ id: string; stored: Uint8Array; received: string; body: Uint8Array }> => {
    const reply = await transaction(c, {
      from: "alice@example.com",
      to: options.to ?? ["x@dest.example"],
      data,
      mailParams: options.mailParams,
    });
    const id = queueId(reply);
    const stored = await waitForMessage(relay.outbox, id);
    const { received, rest } = splitReceived(stored);
    return { id, stored, received, body: rest };
  };

  const step = (name: string, fn: () => Promise<void>) => t.step(name, fn);

  try {
    await step("01 greeting is a single 220 line with the hostname", async () => {
      for (const kind of PORTS) {
        const [c, greeting] = await connectTo(relay, kind);
        c.close();
        deepStrictEqual(greeting.lines, [GREETING]);
      }
    });

    await step(
      "02 EHLO response format: 250- lines, last 250 SP, one keyword per line",
      async () => {
        for (const kind of PORTS) {
          const [c] = await connectTo(relay, kind);
          try {
            const reply = await c.command("EHLO client.example");
            ok(reply.lines.length >= 6);
            strictEqual(reply.lines[0], "250-relay.test Hello client.example [127.0.0.1]");
            for (const line of reply.lines.slice(0, -1)) match(line, /^250-\S/);
            match(reply.lines[reply.lines.length - 1], /^250 [A-Z0-9]/);
            for (const line of reply.lines) ok(line.length <= 510, "reply line too long");
            const keywords = reply.lines.slice(1).map((l) => l.slice(4).split(" ")[0]);
            for (const k of ["PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]) {
              ok(keywords.includes(k), `${kind}: ${k} missing`);
            }
            strictEqual(new Set(keywords).size, keywords.length, "a keyword is repeated");
          } finally {
            c.close();
          }
        }
      },
    );

    await step("03 HELO fallback: single-line 250, and mail still flows (SMTPSA)", async () => {
      const [c] = await connectTo(relay, "smtps");
      try {
        strictEqual((await c.command("HELO old.client")).text, "250 relay.test");
        strictEqual(
          (await c.command(`AUTH PLAIN ${ALICE}`)).text,
          "235 2.7.0 Authentication successful",
        );
        const { received } = await roundTrip(c, "Subject: helo\r\n\r\nhi\r\n");
        match(
          received,
          /^Received: from old\.client \(\[127\.0\.0\.1\]\)\r\n\tby relay\.test \(relay\) with SMTPSA id /,
        );
      } finally {
        c.close();
      }
    });

    await step("04 STARTTLS negotiation: 220, TLS 1.3 handshake, fresh EHLO", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        const ehlo = await c.command("EHLO client.example");
        strictEqual(ehlo.lines[ehlo.lines.length - 1], "250 STARTTLS");
        await c.starttls();
        ok(c.tls);
        const again = await c.command("EHLO client.example");
        ok(!again.lines.some((l) => l.includes("STARTTLS")));
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).code, 235);
        const { received } = await roundTrip(c, "Subject: tls\r\n\r\nhi\r\n");
        match(received, /\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+\)/);
      } finally {
        c.close();
      }
    });

    await step("05 AUTH is advertised and accepted only once TLS is up", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        ok(!(await c.command("EHLO client.example")).text.includes("AUTH"));
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).code, 538);
        await c.starttls();
        const ehlo = await c.command("EHLO client.example");
        ok(ehlo.lines.includes("250 AUTH PLAIN LOGIN"), ehlo.text);
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).code, 235);
      } finally {
        c.close();
      }
    });

    await step("06 530 before AUTH", async () => {
      for (const kind of PORTS) {
        const c = await greeted(relay, kind);
        try {
          strictEqual(
            (await c.command("MAIL FROM:<alice@example.com>")).text,
            "530 5.7.0 Authentication required",
          );
        } finally {
          c.close();
        }
      }
    });

    await step("07 MAIL 250 2.1.0, RCPT 250 2.1.5, DATA 354, dot 250 2.0.0", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
          strictEqual((await c.command("RCPT TO:<x@dest.example>")).text, "250 2.1.5 Ok");
          strictEqual((await c.command("DATA")).text, "354 End data with <CR><LF>.<CR><LF>");
          await c.write("Subject: codes\r\n\r\nhi\r\n");
          match((await c.command(".")).text, /^250 2\.0\.0 Ok: queued as [0-9A-F]{20,26}$/);
        } finally {
          c.close();
        }
      }
    });

    await step("08 multiple recipients are all kept, in order", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const to = ["a@dest.example", "b@other.example", "c@dest.example"];
        const { id, received } = await roundTrip(c, "Subject: many\r\n\r\nhi\r\n", { to });
        const meta = JSON.parse(await Deno.readTextFile(`${relay.outbox}/${id}.json`));
        deepStrictEqual(meta.recipients, to);
        // With several recipients the header names none of them.
        ok(!received.includes("for <"));
      } finally {
        c.close();
      }
    });

    await step("09 RSET clears the transaction", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        await c.command("MAIL FROM:<alice@example.com>");
        await c.command("RCPT TO:<x@dest.example>");
        strictEqual((await c.command("RSET")).text, "250 2.0.0 Ok");
        strictEqual((await c.command("DATA")).text, "503 5.5.1 Error: need MAIL command");
        strictEqual(
          (await c.command("RCPT TO:<x@dest.example>")).text,
          "503 5.5.1 Error: need MAIL command",
        );
        // Still authenticated after RSET.
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
      } finally {
        c.close();
      }
    });

    await step("10 NOOP inside a transaction keeps it", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        await c.command("MAIL FROM:<alice@example.com>");
        strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
        await c.command("RCPT TO:<x@dest.example>");
        strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
        strictEqual((await c.command("DATA")).code, 354);
        await c.write("Subject: noop\r\n\r\nhi\r\n");
        queueId(await c.command("."));
      } finally {
        c.close();
      }
    });

    await step("11 QUIT: 221 2.0.0 and close, also mid-transaction", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          await c.command("MAIL FROM:<alice@example.com>");
          strictEqual((await c.command("QUIT")).text, "221 2.0.0 Bye");
          await c.expectEof();
        } finally {
          c.close();
        }
      }
    });

    await step("12 verbs and parameters are case-insensitive", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        strictEqual((await c.command("ehlo client.example")).code, 250);
        strictEqual((await c.command("StartTLS")).text, "220 2.0.0 Ready to start TLS");
        await c.startTls();
        strictEqual((await c.command("eHlO client.example")).code, 250);
        strictEqual((await c.command(`auth Plain ${ALICE}`)).code, 235);
        strictEqual(
          (await c.command("mail from:<alice@example.com> size=10 body=8bitmime")).text,
          "250 2.1.0 Ok",
        );
        strictEqual((await c.command("rcpt to:<x@dest.example>")).text, "250 2.1.5 Ok");
        strictEqual((await c.command("noop")).text, "250 2.0.0 Ok");
        strictEqual((await c.command("data")).code, 354);
        await c.write("Subject: case\r\n\r\nhi\r\n");
        queueId(await c.command("."));
        strictEqual((await c.command("quit")).text, "221 2.0.0 Bye");
      } finally {
        c.close();
      }
    });

    await step("13 trailing whitespace is tolerated", async () => {
      const [c] = await connectTo(relay, "smtps");
      try {
        strictEqual(
          (await c.command("EHLO client.example  ")).lines[0],
          "250-relay.test Hello client.example [127.0.0.1]",
        );
        strictEqual((await c.command(`AUTH PLAIN ${ALICE} `)).code, 235);
        strictEqual((await c.command("MAIL FROM:<alice@example.com> ")).text, "250 2.1.0 Ok");
        strictEqual((await c.command("RCPT TO:<x@dest.example>  ")).text, "250 2.1.5 Ok");
        strictEqual((await c.command("NOOP ")).text, "250 2.0.0 Ok");
        strictEqual((await c.command("DATA ")).code, 354);
        await c.write("Subject: ws\r\n\r\nhi\r\n");
        queueId(await c.command("."));
        strictEqual((await c.command("RSET\t")).text, "250 2.0.0 Ok");
        strictEqual((await c.command("QUIT ")).text, "221 2.0.0 Bye");
      } finally {
        c.close();
      }
    });

    await step("14 bare-LF command lines are accepted", async () => {
      const [c] = await connectTo(relay, "smtps");
      try {
        await c.write("EHLO client.example\n");
        strictEqual((await c.reply()).code, 250);
        await c.write(
          `AUTH PLAIN ${ALICE}\nMAIL FROM:<alice@example.com>\nRCPT TO:<x@dest.example>\nDATA\n`,
        );
        deepStrictEqual((await c.replies(4)).map((r) => r.code), [235, 250, 250, 354]);
        // In DATA, CRLF is required (see step 21); the end mark is CRLF.CRLF.
        await c.write("Subject: lf\r\n\r\nhi\r\n.\r\n");
        queueId(await c.reply());
      } finally {
        c.close();
      }
    });

    await step("15 command lines: 2048 octets accepted, 2049 get 500 5.5.2", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          const local = "a".repeat(60);
          const domain = `${"d".repeat(60)}.`.repeat(3) + "example";
          const rcpt = `RCPT TO:<${local}@${domain}>`;
          strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
          strictEqual((await c.command(rcpt)).text, "250 2.1.5 Ok");
          strictEqual((await c.command(`NOOP ${"x".repeat(2043)}`)).text, "250 2.0.0 Ok");
          strictEqual(
            (await c.command(`NOOP ${"x".repeat(2044)}`)).text,
            "500 5.5.2 Error: line too long",
          );
          await c.write(`NOOP ${"x".repeat(2043)}\n`);
          strictEqual((await c.reply()).text, "250 2.0.0 Ok");
          await c.write(`NOOP ${"x".repeat(2044)}\n`);
          strictEqual((await c.reply()).text, "500 5.5.2 Error: line too long");
          await c.write(`NOOP ${"x".repeat(100_000)}\r\n`);
          strictEqual((await c.reply()).text, "500 5.5.2 Error: line too long");
          // The transaction survived the over-long lines.
          strictEqual((await c.command("DATA")).code, 354);
          await c.write("Subject: long lines\r\n\r\nhi\r\n");
          queueId(await c.command("."));
        } finally {
          c.close();
        }
      }
    });

    await step("16 dot-stuffed lines arrive unstuffed, byte-exact", async () => {
      const original = "Subject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\n...\r\nend.\r\n. \r\n.\r\n";
      const stuffed = original.split("\r\n").map((l) => l.startsWith(".") ? `.${l}` : l).join(
        "\r\n",
      );
      const c = await authenticated(relay, "submission");
      try {
        const { body } = await roundTrip(c, stuffed);
        strictEqual(decoder.decode(body), original);
      } finally {
        c.close();
      }
    });

    await step("17 empty message: DATA then the dot", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const { body, received } = await roundTrip(c, "");
        strictEqual(body.length, 0);
        match(received, /^Received: /);
      } finally {
        c.close();
      }
    });

    await step("18 8BITMIME: every byte value but CR and LF preserved", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const head = encoder.encode("Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
        const line = new Uint8Array(254);
        let n = 0;
        for (let b = 0; b < 256; b++) if (b !== 10 && b !== 13) line[n++] = b;
        const data = new Uint8Array([...head, ...line, 13, 10, ...line.reverse(), 13, 10]);
        const { body, id } = await roundTrip(c, data, { mailParams: "BODY=8BITMIME" });
        deepStrictEqual(body, data);
        const meta = JSON.parse(await Deno.readTextFile(`${relay.outbox}/${id}.json`));
        strictEqual(meta.body, "8BITMIME");
      } finally {
        c.close();
      }
    });

    await step("19 SMTPUTF8: UTF-8 addresses and headers are accepted and kept", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const data =
          "From: Jörg <jörg@example.com>\r\nTo: 用户@例子.测试\r\nSubject: grüße\r\n\r\nçà\r\n";
        const reply = await transaction(c, {
          from: "jörg@example.com",
          to: ["用户@例子.测试"],
          mailParams: "SMTPUTF8 BODY=8BITMIME",
          data,
        });
        const stored = await waitForMessage(relay.outbox, queueId(reply));
        strictEqual(decoder.decode(splitReceived(stored).rest), data);
      } finally {
        c.close();
      }
    });

    await step(
      "20 Received header: ESMTPSA, TLS version and cipher, sender, queue id",
      async () => {
        for (const kind of PORTS) {
          const c = await authenticated(relay, kind);
          try {
            const { id, received } = await roundTrip(c, "Subject: trace\r\n\r\nhi\r\n");
            match(
              received,
              new RegExp(
                "^Received: from client\\.example \\(\\[127\\.0\\.0\\.1\\]\\)\\r\\n" +
                  `\\tby relay\\.test \\(relay\\) with ESMTPSA id ${id}\\r\\n` +
                  "\\t\\(using TLSv1\\.3 with cipher TLS_[A-Z0-9_]+\\)\\r\\n" +
                  "\\t\\(authenticated sender: alice@example\\.com\\)\\r\\n" +
                  "\\tfor <x@dest\\.example>;\\r\\n" +
                  "\\t(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d{1,2} [A-Z][a-z]{2} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\r\\n$",
              ),
            );
          } finally {
            c.close();
          }
        }
      },
    );

    await step("21 '250 2.0.0 Ok: queued as ID' names the outbox file", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const reply = await transaction(c, {
          from: "alice@example.com",
          to: ["x@dest.example"],
          data: "Subject: id\r\nX-Marker: compliance-21\r\n\r\nhi\r\n",
        });
        const id = queueId(reply);
        const stored = decoder.decode(await waitForMessage(relay.outbox, id));
        ok(stored.includes("X-Marker: compliance-21\r\n"));
        const meta = JSON.parse(await Deno.readTextFile(`${relay.outbox}/${id}.json`));
        strictEqual(meta.id, id);
      } finally {
        c.close();
      }
    });

    await step("22 bare LF in DATA: 554 5.6.0 and nothing stored", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const before = (await relay.outboxFiles()).length;
        // The earlier steps' messages may still be in the spool for a moment after delivery.
        const queuedBefore = new Set(await relay.relay.spool.list());
        for (
          const data of [
            "Subject: lf\n\nbare\r\n",
            "Subject: x\r\n\r\nmid\nline\r\n",
            "a\r\n\nb\r\n",
          ]
        ) {
          strictEqual(
            (await transaction(c, { from: "alice@example.com", to: ["x@dest.example"], data }))
              .text,
            "554 5.6.0 Message contains bare <LF>; lines must end with <CR><LF>",
          );
        }
        // Smuggling attempt: <LF>.<CRLF> must not end the data, so the MAIL below is data.
        const smuggle = "Subject: s\r\n\r\nhi\n.\r\nMAIL FROM:<alice@example.com>\r\n";
        strictEqual(
          (await transaction(c, {
            from: "alice@example.com",
            to: ["x@dest.example"],
            data: smuggle,
          })).text,
          "554 5.6.0 Message contains bare <LF>; lines must end with <CR><LF>",
        );
        strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
        // Refused before the commit: nothing was queued that could reach the outbox later.
        deepStrictEqual((await relay.relay.spool.list()).filter((id) => !queuedBefore.has(id)), []);
        strictEqual((await relay.outboxFiles()).length, before);
      } finally {
        c.close();
      }
    });

    await step("23 the connection survives every error", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          const errors = [
            ["FOO", 500],
            ["BDAT 10", 502],
            ["MAIL FROM:", 501],
            ["RCPT TO:<x@dest.example>", 503],
            ["MAIL FROM:<alice@example.com> X=1", 555],
            ["MAIL FROM:<>", 550],
            ["MAIL FROM:<bob@company.com>", 550],
            ["MAIL FROM:<jörg@example.com>", 553],
            [`MAIL FROM:<alice@example.com> SIZE=${10 ** 12}`, 552],
            ["AUTH PLAIN x", 503],
            ["STARTTLS", 554],
            [`NOOP ${"x".repeat(5000)}`, 500],
          ] as const;
          for (const [line, code] of errors) strictEqual((await c.command(line)).code, code, line);
          const { body } = await roundTrip(c, "Subject: survived\r\n\r\nhi\r\n");
          strictEqual(decoder.decode(body), "Subject: survived\r\n\r\nhi\r\n");
        } finally {
          c.close();
        }
      }
    });

    await step("24 every reply after EHLO carries an enhanced status code", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        for (const line of ["NOOP", "RSET", "VRFY x", "FOO", "MAIL FROM:<>", "RCPT TO:<a@b.c>"]) {
          match((await c.command(line)).text, /^\d{3} [245]\.\d{1,3}\.\d{1,3} /, line);
        }
        match((await c.command("MAIL FROM:<alice@example.com>")).text, /^250 2\.1\.0 /);
      } finally {
        c.close();
      }
    });

    await step("25 VRFY 252 and HELP 214 without authentication", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        strictEqual((await c.command("VRFY postmaster")).code, 252);
        strictEqual((await c.command("HELP")).code, 214);
        strictEqual((await c.command("HELP MAIL")).code, 214);
      } finally {
        c.close();
      }
    });

    await step("26 EHLO in a transaction resets it", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        await c.command("MAIL FROM:<alice@example.com>");
        await c.command("RCPT TO:<x@dest.example>");
        strictEqual((await c.command("EHLO client.example")).code, 250);
        strictEqual((await c.command("DATA")).text, "503 5.5.1 Error: need MAIL command");
        // Authentication survives EHLO (only STARTTLS forgets it).
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
      } finally {
        c.close();
      }
    });

    await step("27 end of data split across writes at every position", async () => {
      const c = await authenticated(relay, "submission");
      try {
        const tail = "\r\n.\r\n";
        for (let cut = 0; cut <= tail.length; cut++) {
          await c.command("MAIL FROM:<alice@example.com>");
          await c.command("RCPT TO:<x@dest.example>");
          strictEqual((await c.command("DATA")).code, 354);
          await c.write(`Subject: split ${cut}\r\n\r\nbody`);
          await c.write(tail.slice(0, cut));
          await new Promise((resolve) => setTimeout(resolve, 5));
          await c.write(tail.slice(cut));
          const id = queueId(await c.reply());
          const { rest } = splitReceived(await waitForMessage(relay.outbox, id));
          strictEqual(decoder.decode(rest), `Subject: split ${cut}\r\n\r\nbody\r\n`);
        }
      } finally {
        c.close();
      }
    });

    await step("28 long body lines and large messages are kept byte-exact", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const long = "L".repeat(5000);
        const big = `Subject: big\r\n\r\n${long}\r\n${
          "line of text 0123456789\r\n".repeat(20_000)
        }`;
        const { body } = await roundTrip(c, big);
        strictEqual(body.length, encoder.encode(big).length);
        strictEqual(decoder.decode(body), big);
      } finally {
        c.close();
      }
    });

    await step("29 twenty errors end the session with 421 4.7.0", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        for (let i = 0; i < 19; i++) strictEqual((await c.command("FOO")).code, 500);
        strictEqual((await c.command("FOO")).code, 500);
        strictEqual((await c.reply()).text, "421 4.7.0 relay.test Error: too many errors");
        await c.expectEof();
      } finally {
        c.close();
      }
    });

    await step("30 several messages in one session, each queued separately", async () => {
      const c = await authenticated(relay, "submission");
      try {
        const ids = new Set<string>();
        for (let i = 0; i < 5; i++) {
          const { id, body } = await roundTrip(c, `Subject: n${i}\r\n\r\n${i}\r\n`);
          strictEqual(decoder.decode(body), `Subject: n${i}\r\n\r\n${i}\r\n`);
          ids.add(id);
        }
        strictEqual(ids.size, 5);
      } finally {
        c.close();
      }
    });

    await step("31 MAIL FROM accepts the AUTH= parameter (RFC 4954 section 5)", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          strictEqual(
            (await c.command("MAIL FROM:<alice@example.com> AUTH=<>")).text,
            "250 2.1.0 Ok",
          );
          await c.command("RSET");
          strictEqual(
            (await c.command(
              "MAIL FROM:<alice@example.com> AUTH=alice+40example.com BODY=8BITMIME",
            ))
              .text,
            "250 2.1.0 Ok",
          );
          await c.command("RSET");
          strictEqual(
            (await c.command("MAIL FROM:<alice@example.com> AUTH=a=b")).text,
            "501 5.5.4 Bad value for parameter AUTH",
          );
        } finally {
          c.close();
        }
      }
    });

    await step(
      "32 a client that half-closes after its commands still gets every reply",
      async () => {
        for (let round = 0; round < 5; round++) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.submissionPort });
          try {
            await conn.write(encoder.encode("EHLO x\r\nNOOP\r\nVRFY a\r\nQUIT\r\n"));
            await conn.closeWrite();
            const buf = new Uint8Array(65536);
            let text = "";
            for (;;) {
              const n = await conn.read(buf);
              if (n === null) break;
              text += decoder.decode(buf.subarray(0, n));
            }
            const lines = text.split("\r\n");
            deepStrictEqual(lines.slice(-5), [
              "250 STARTTLS",
              "250 2.0.0 Ok",
              "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
              "221 2.0.0 Bye",
              "",
            ]);
          } finally {
            conn.close();
          }
        }
      },
    );
  } finally {
    await relay.close();
  }
});
