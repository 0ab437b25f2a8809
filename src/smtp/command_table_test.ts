import assert from "node:assert/strict";
import {
  COMMAND_TABLE,
  type CommandTable,
  refusal,
  type SessionFacts,
  VerbCounters,
} from "./command_table.ts";
import { Replies } from "./replies.ts";

const fresh: SessionFacts = {
  greeted: false,
  tls: false,
  authenticated: false,
  inTransaction: false,
};

Deno.test("command table: a handler for one verb cannot take another verb's command", () => {
  const wrong: Partial<CommandTable> = {
    // @ts-expect-error RCPT's handler takes RCPT's command, not MAIL's
    MAIL: { counter: "mail", run: (s, c) => s.rcpt(c) },
  };
  assert.ok(wrong.MAIL);
});

Deno.test("command table: the rules are checked in order, with each verb's own reply", () => {
  const code = (verb: keyof CommandTable, facts: Partial<SessionFacts>) =>
    refusal(COMMAND_TABLE[verb], { ...fresh, ...facts })?.lines[0] ?? "go";
  assert.equal(code("MAIL", {}), Replies.needEhlo().lines[0]);
  assert.equal(code("MAIL", { greeted: true }), Replies.tlsRequired().lines[0]);
  assert.equal(code("AUTH", { greeted: true }), Replies.encryptionRequired().lines[0]);
  assert.equal(code("MAIL", { greeted: true, tls: true }), Replies.authRequired().lines[0]);
  const authed = { greeted: true, tls: true, authenticated: true };
  assert.equal(code("MAIL", authed), "go");
  assert.equal(code("MAIL", { ...authed, inTransaction: true }), Replies.nestedMail().lines[0]);
  assert.equal(
    code("AUTH", { ...authed, inTransaction: true }),
    Replies.authInTransaction().lines[0],
  );
  assert.equal(code("RCPT", authed), Replies.needMail().lines[0]);
  assert.equal(code("DATA", { ...authed, inTransaction: true }), "go");
  assert.equal(code("NOOP", {}), "go", "NOOP, RSET, QUIT need nothing");
  assert.equal(code("QUIT", {}), "go");
});

Deno.test("command table: junk verbs and group enders are marked as RFC 2920 says", () => {
  const junk = Object.entries(COMMAND_TABLE).filter(([, s]) => s.junk).map(([v]) => v).sort();
  assert.deepEqual(junk, ["EHLO", "HELO", "HELP", "NOOP", "RSET", "VRFY"]);
  for (const verb of ["EHLO", "DATA", "VRFY", "QUIT", "NOOP", "STARTTLS", "AUTH"] as const) {
    assert.equal(COMMAND_TABLE[verb].lastInGroup, true, verb);
  }
  assert.equal(COMMAND_TABLE.MAIL.lastInGroup, undefined);
  assert.equal(COMMAND_TABLE.RCPT.lastInGroup, undefined);
});

Deno.test("VerbCounters: Postfix's disconnect format, ok/total only where something failed", () => {
  const counts = new VerbCounters();
  counts.record("ehlo", true);
  counts.record("auth", false);
  counts.record("auth", true);
  counts.record("mail", true);
  counts.record("rcpt", true);
  counts.record("rcpt", true);
  counts.record("data", true);
  counts.record("quit", true);
  assert.equal(
    counts.toString(),
    "ehlo=1 auth=1/2 mail=1 rcpt=2 data=1 quit=1 commands=7/8",
  );
  assert.equal(new VerbCounters().toString(), "commands=0");
});
