/**
 * Every SMTP verb's replies on both ports, as exact lines: unknown and
 * unimplemented commands, syntax errors, bad sequences, envelope policy
 * (authentication, TLS, null sender, domain match, SMTPUTF8, SIZE) and the
 * small commands (VRFY, HELP, NOOP, RSET, QUIT), plus the non-SMTP hang-up.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  authenticated,
  connectTo,
  greeted,
  plain,
  PORTS,
  queueId,
  type RawClient,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay, USERS } from "./support/relay.ts";

const MISMATCH = "550 5.7.1 Domain mismatch: authenticated domain (example.com) does not " +
  "match MAIL FROM domain (company.com)";
const NEED_EHLO = "503 5.5.1 Error: send HELO/EHLO first";

Deno.test("SMTP commands and their replies", async (t) => {
  const relay = await startTestRelay({
    users: [...USERS, { email: "kai@xn--bcher-kva.example", password: "kai-secret-3" }],
  });
  /** Runs `body` on an authenticated session (alice) on each port. */
  const authedOnEachPort = async (body: (c: RawClient) => Promise<void>) => {
    for (const kind of PORTS) {
      const c = await authenticated(relay, kind);
      try {
        await body(c);
      } catch (error) {
        throw new Error(`on ${kind}: ${error instanceof Error ? error.message : error}`, {
          cause: error,
        });
      } finally {
        c.close();
      }
    }
  };
  try {
    await t.step("500 unknown command, before and after EHLO", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          strictEqual((await c.command("FOO")).text, "500 5.5.2 Error: command not recognized");
          await c.command("EHLO client.example");
          strictEqual(
            (await c.command("XYZZY arg")).text,
            "500 5.5.2 Error: command not recognized",
          );
          strictEqual((await c.command("")).text, "500 5.5.2 Error: command not recognized");
          strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
        } finally {
          c.close();
        }
      }
    });

    await t.step("502 for known but unimplemented verbs", async () => {
      await authedOnEachPort(async (c) => {
        for (const verb of ["BDAT", "ETRN", "EXPN", "TURN"]) {
          strictEqual(
            (await c.command(`${verb} something`)).text,
            `502 5.5.1 Error: command ${verb} not implemented`,
          );
        }
      });
    });

    await t.step("501 syntax errors", async () => {
      await authedOnEachPort(async (c) => {
        strictEqual(
          (await c.command("MAIL alice@example.com")).text,
          "501 5.5.4 Syntax: MAIL FROM:<address>",
        );
        strictEqual((await c.command("MAIL FROM:")).text, "501 5.5.4 Syntax: MAIL FROM:<address>");
        strictEqual(
          (await c.command("MAIL FROM:alice@example.com")).text,
          "501 5.5.4 Syntax: MAIL FROM:<address>",
        );
        strictEqual(
          (await c.command("MAIL FROM:<not an address>")).text,
          "501 5.1.7 Bad sender address syntax",
        );
        strictEqual(
          (await c.command("MAIL FROM:<alice@>")).text,
          "501 5.1.7 Bad sender address syntax",
        );
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com> SIZE=abc")).text,
          "501 5.5.4 Bad value for parameter SIZE",
        );
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com> BODY=BINARYMIME")).text,
          "501 5.5.4 Bad value for parameter BODY",
        );
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
        strictEqual(
          (await c.command("RCPT x@dest.example")).text,
          "501 5.5.4 Syntax: RCPT TO:<address>",
        );
        strictEqual((await c.command("RCPT TO:<>")).text, "501 5.1.3 Bad recipient address syntax");
        strictEqual(
          (await c.command("RCPT TO:<no-at-sign>")).text,
          "501 5.1.3 Bad recipient address syntax",
        );
        strictEqual((await c.command("DATA now")).text, "501 5.5.4 Syntax: DATA");
        strictEqual((await c.command("RSET all")).text, "501 5.5.4 Syntax: RSET");
        strictEqual((await c.command("VRFY")).text, "501 5.5.4 Syntax: VRFY address");
        strictEqual((await c.command("QUIT now")).text, "501 5.5.4 Syntax: QUIT");
        // The transaction survived all of that.
        strictEqual((await c.command("RCPT TO:<x@dest.example>")).text, "250 2.1.5 Ok");
      });
    });

    await t.step("555 unknown MAIL or RCPT parameter", async () => {
      await authedOnEachPort(async (c) => {
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com> FOO=bar")).text,
          "555 5.5.4 Unsupported option: FOO",
        );
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com> RET=HDRS")).text,
          "555 5.5.4 Unsupported option: RET",
        );
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
        strictEqual(
          (await c.command("RCPT TO:<x@dest.example> NOTIFY=NEVER")).text,
          "555 5.5.4 Unsupported option: NOTIFY",
        );
      });
    });

    await t.step("503 bad sequences", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, NEED_EHLO);
          strictEqual((await c.command("RCPT TO:<x@dest.example>")).text, NEED_EHLO);
          strictEqual((await c.command("DATA")).text, NEED_EHLO);
        } finally {
          c.close();
        }
      }
      await authedOnEachPort(async (c) => {
        strictEqual(
          (await c.command("RCPT TO:<x@dest.example>")).text,
          "503 5.5.1 Error: need MAIL command",
        );
        strictEqual((await c.command("DATA")).text, "503 5.5.1 Error: need MAIL command");
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
        strictEqual((await c.command("DATA")).text, "503 5.5.1 Error: need RCPT command");
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com>")).text,
          "503 5.5.1 Error: nested MAIL command",
        );
        strictEqual((await c.command("RCPT TO:<x@dest.example>")).text, "250 2.1.5 Ok");
        strictEqual((await c.command("DATA")).text, "354 End data with <CR><LF>.<CR><LF>");
        await c.write("Subject: after errors\r\n\r\nok\r\n");
        queueId(await c.command("."));
      });
    });

    await t.step("530 authentication required before MAIL", async () => {
      for (const kind of PORTS) {
        const c = await greeted(relay, kind);
        try {
          strictEqual(
            (await c.command("MAIL FROM:<alice@example.com>")).text,
            "530 5.7.0 Authentication required",
          );
          strictEqual(
            (await c.command("RCPT TO:<x@dest.example>")).text,
            "503 5.5.1 Error: need MAIL command",
          );
        } finally {
          c.close();
        }
      }
    });

    await t.step("530 Must issue a STARTTLS first: MAIL on plain submission", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com>")).text,
          "530 5.7.0 Must issue a STARTTLS command first",
        );
        await c.command("HELO client.example");
        strictEqual(
          (await c.command("MAIL FROM:<>")).text,
          "530 5.7.0 Must issue a STARTTLS command first",
        );
      } finally {
        c.close();
      }
    });

    await t.step("552 5.3.4 SIZE over the limit at MAIL", async () => {
      await authedOnEachPort(async (c) => {
        const max = relay.config.limits.max_message_bytes;
        strictEqual(
          (await c.command(`MAIL FROM:<alice@example.com> SIZE=${max + 1}`)).text,
          "552 5.3.4 Message size exceeds fixed maximum message size",
        );
        strictEqual(
          (await c.command(`MAIL FROM:<alice@example.com> SIZE=${max}`)).text,
          "250 2.1.0 Ok",
        );
      });
    });

    await t.step("550 5.7.1 null sender", async () => {
      await authedOnEachPort(async (c) => {
        strictEqual(
          (await c.command("MAIL FROM:<>")).text,
          "550 5.7.1 Null sender <> is not allowed for authenticated submission",
        );
      });
    });

    await t.step("550 5.7.1 domain mismatch, exact text", async () => {
      await authedOnEachPort(async (c) => {
        strictEqual((await c.command("MAIL FROM:<bob@company.com>")).text, MISMATCH);
        strictEqual((await c.command("MAIL FROM:<alice@company.com>")).text, MISMATCH);
        strictEqual(
          (await c.command("MAIL FROM:<alice@sub.example.com>")).text,
          "550 5.7.1 Domain mismatch: authenticated domain (example.com) does not match " +
            "MAIL FROM domain (sub.example.com)",
        );
      });
      const bob = await authenticated(relay, "smtps", USERS[1]);
      try {
        strictEqual(
          (await bob.command("MAIL FROM:<alice@example.com>")).text,
          "550 5.7.1 Domain mismatch: authenticated domain (company.com) does not match " +
            "MAIL FROM domain (example.com)",
        );
      } finally {
        bob.close();
      }
    });

    await t.step("the sender domain is compared case-insensitively", async () => {
      await authedOnEachPort(async (c) => {
        strictEqual((await c.command("MAIL FROM:<ALICE@EXAMPLE.COM>")).text, "250 2.1.0 Ok");
        await c.command("RSET");
        strictEqual(
          (await c.command("MAIL FROM:<other.person@Example.Com>")).text,
          "250 2.1.0 Ok",
        );
      });
    });

    await t.step("a domain with a trailing, leading or empty label is bad syntax", async () => {
      await authedOnEachPort(async (c) => {
        for (const bad of ["alice@example.com.", "alice@.example.com", "alice@example..com"]) {
          strictEqual(
            (await c.command(`MAIL FROM:<${bad}>`)).text,
            "501 5.1.7 Bad sender address syntax",
          );
        }
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
        strictEqual(
          (await c.command("RCPT TO:<bob@example.net.>")).text,
          "501 5.1.3 Bad recipient address syntax",
        );
      });
    });

    await t.step("IDN: Unicode and punycode spellings of a domain are equal", async () => {
      for (
        const authcid of ["kai@bücher.example", "kai@xn--bcher-kva.example", "KAI@BÜCHER.EXAMPLE"]
      ) {
        const c = await greeted(relay, "smtps");
        try {
          strictEqual(
            (await c.command(`AUTH PLAIN ${plain(authcid, "kai-secret-3")}`)).text,
            "235 2.7.0 Authentication successful",
            authcid,
          );
          strictEqual(
            (await c.command("MAIL FROM:<kai@bücher.example> SMTPUTF8")).text,
            "250 2.1.0 Ok",
          );
          await c.command("RSET");
          strictEqual(
            (await c.command("MAIL FROM:<kai@xn--bcher-kva.example>")).text,
            "250 2.1.0 Ok",
          );
          await c.command("RSET");
          strictEqual(
            (await c.command("MAIL FROM:<Kai@BÜCHER.Example> SMTPUTF8")).text,
            "250 2.1.0 Ok",
          );
          await c.command("RSET");
          strictEqual(
            (await c.command("MAIL FROM:<kai@example.com>")).text,
            "550 5.7.1 Domain mismatch: authenticated domain (xn--bcher-kva.example) does not " +
              "match MAIL FROM domain (example.com)",
          );
        } finally {
          c.close();
        }
      }
    });

    await t.step("553 5.6.7 non-ASCII address without SMTPUTF8, accepted with it", async () => {
      await authedOnEachPort(async (c) => {
        strictEqual(
          (await c.command("MAIL FROM:<jörg@example.com>")).text,
          "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter",
        );
        strictEqual(
          (await c.command("MAIL FROM:<jörg@example.com> SMTPUTF8")).text,
          "250 2.1.0 Ok",
        );
        strictEqual((await c.command("RCPT TO:<用户@例子.测试>")).text, "250 2.1.5 Ok");
        await c.command("RSET");
        strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
        strictEqual(
          (await c.command("RCPT TO:<josé@dest.example>")).text,
          "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter",
        );
        strictEqual((await c.command("RCPT TO:<jose@dest.example>")).text, "250 2.1.5 Ok");
      });
    });

    await t.step("a message with SMTPUTF8 addresses is queued with them", async () => {
      const c = await authenticated(relay, "smtps");
      try {
        const id = queueId(
          await transaction(c, {
            from: "jörg@example.com",
            to: ["用户@例子.测试"],
            mailParams: "SMTPUTF8",
            data: "Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n\r\ngrüße\r\n",
          }),
        );
        await waitForMessage(relay.outbox, id);
        const meta = JSON.parse(await Deno.readTextFile(`${relay.outbox}/${id}.json`));
        strictEqual(meta.from, "jörg@example.com");
        deepStrictEqual(meta.recipients, ["用户@例子.测试"]);
        strictEqual(meta.smtputf8, true);
      } finally {
        c.close();
      }
    });

    await t.step("VRFY 252, HELP 214, NOOP and RSET 250", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          strictEqual(
            (await c.command("VRFY alice")).text,
            "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
          );
          deepStrictEqual((await c.command("HELP")).lines, [
            "214-2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
            "214 2.0.0 See RFC 5321 and RFC 6409",
          ]);
          strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
          strictEqual((await c.command("NOOP with args")).text, "250 2.0.0 Ok");
          strictEqual((await c.command("RSET")).text, "250 2.0.0 Ok");
        } finally {
          c.close();
        }
      }
    });

    await t.step("QUIT: 221 and the server closes", async () => {
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

    await t.step("521 for an HTTP request, then the connection is closed", async () => {
      for (const kind of PORTS) {
        const [c] = await connectTo(relay, kind);
        try {
          await c.write("GET / HTTP/1.1\r\nHost: relay.test\r\nUser-Agent: curl\r\n\r\n");
          strictEqual(
            (await c.reply()).text,
            "521 5.7.0 Error: non-SMTP command received, closing connection",
          );
          await c.expectEof();
        } finally {
          c.close();
        }
      }
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        strictEqual(
          (await c.command("POST /submit HTTP/1.1")).text,
          "521 5.7.0 Error: non-SMTP command received, closing connection",
        );
        await c.expectEof();
      } finally {
        c.close();
      }
      deepStrictEqual(
        relay.audit.events.filter((e) => e.event === "security_non_smtp_command").length,
        3,
      );
    });
  } finally {
    await relay.close();
  }
});
