/**
 * The session under random input, on a live relay: every command line gets
 * exactly one reply (in order, pipelined in one write; no extra reply
 * follows), or the session ends
 * with a 421/521 that says why; nothing escapes as an exception, and the
 * server keeps serving afterwards.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { authenticated, greeted } from "./support/raw_client.ts";
import { startTestRelay } from "./support/relay.ts";

/** Printable lines mixing SMTP verbs and junk; no DATA (its body would swallow lines). */
const line = fc.oneof(
  fc.constantFrom(
    "NOOP",
    "RSET",
    "HELP",
    "VRFY x",
    "MAIL FROM:<alice@example.com>",
    "MAIL FROM:<x@company.com>",
    "MAIL FROM:<>",
    "RCPT TO:<bob@example.net>",
    "RCPT TO:<bad",
    "AUTH BOGUS",
    "EXPN x",
    "MAIL FROM:<alice@example.com> SIZE=99999999999",
    "MAIL FROM:<alice@example.com> FOO=BAR",
  ),
  fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ:<>@. =-1"), maxLength: 40 })
    .filter((s) =>
      // Lines that end or change the session on purpose are left out: DATA,
      // QUIT, STARTTLS, AUTH, and the non-SMTP verbs (HTTP methods, header names).
      !/^(DATA|QUIT|STARTTLS|AUTH|GET|POST|PUT|HEAD|CONNECT|OPTIONS|PATCH|DELETE)\b|^(HOST|USER-AGENT|RECEIVED|SUBJECT|FROM|TO|CONTENT-TYPE):( |$)/i
        .test(s)
    ),
);

Deno.test("fuzz: every pipelined command line gets exactly one reply, in order", async () => {
  // No tarpit and high limits, so the property is about replies, not limits.
  const t = await startTestRelay({
    config: { limits: { hard_error_limit: 1000, junk_command_limit: 100_000 } },
  });
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 30 }), async (lines) => {
        const c = await authenticated(t, "smtps");
        try {
          await c.write(lines.map((l) => `${l}\r\n`).join("") + "NOOP\r\n");
          const replies = await c.replies(lines.length + 1);
          for (const reply of replies) {
            assert.match(reply.lines.at(-1)!, /^[2-5]\d\d [245]\.\d+\.\d+ /);
          }
          assert.equal(replies.at(-1)!.text, "250 2.0.0 Ok");
          // And nothing more: after QUIT only its own reply arrives.
          await c.write("QUIT\r\n");
          assert.equal(await c.readAll(), "221 2.0.0 Bye\r\n");
        } finally {
          c.close();
        }
      }),
      { numRuns: 60 },
    );
  } finally {
    await t.close();
  }
});

Deno.test("fuzz: random bytes get replies or a reasoned close; the server keeps serving", async () => {
  const t = await startTestRelay();
  try {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (bytes) => {
        const c = await greeted(t, "smtps");
        try {
          // End the junk with a line break, then QUIT: the server must answer
          // everything and close, or close early saying why.
          await c.writeIgnoringClose(bytes);
          await c.writeIgnoringClose("\r\nQUIT\r\n");
          const text = await c.readAll();
          // Whatever came back is well-formed replies; a close comes with its reason.
          for (const l of text.split("\r\n").filter(Boolean)) {
            assert.match(l, /^[2-5]\d\d[ -]/);
          }
          assert.match(text, /(221 2\.0\.0 Bye|(421|521) [45]\.\d+\.\d+ .*)\r\n$/);
        } finally {
          c.close();
        }
      }),
      { numRuns: 40 },
    );
    const c = await authenticated(t, "submission");
    assert.equal((await c.command("NOOP")).text, "250 2.0.0 Ok");
    c.close();
  } finally {
    await t.close();
  }
});
