import { deepStrictEqual } from "node:assert/strict";
import { type Command, parseCommand } from "./commands.ts";

const parse = (line: string | Uint8Array): Command =>
  parseCommand(typeof line === "string" ? new TextEncoder().encode(line) : line);

const MAIL_USAGE = "MAIL FROM:<address>";
const RCPT_USAGE = "RCPT TO:<address>";

Deno.test("parseCommand: EHLO and HELO take one hostname", () => {
  deepStrictEqual(parse("EHLO client.example"), { verb: "EHLO", domain: "client.example" });
  deepStrictEqual(parse("helo [192.0.2.1]"), { verb: "HELO", domain: "[192.0.2.1]" });
  deepStrictEqual(parse("EHLO   spaced.example  "), { verb: "EHLO", domain: "spaced.example" });
  deepStrictEqual(parse("EHLO"), { verb: "INVALID", name: "EHLO", usage: "EHLO hostname" });
  deepStrictEqual(parse("EHLO "), { verb: "INVALID", name: "EHLO", usage: "EHLO hostname" });
  deepStrictEqual(parse("HELO a b"), { verb: "INVALID", name: "HELO", usage: "HELO hostname" });
});

Deno.test("parseCommand: verbs are case-insensitive, trailing blanks and tabs ignored", () => {
  for (const line of ["RSET", "rset", "RsEt", "RSET ", "RSET\t", "RSET \t "]) {
    deepStrictEqual(parse(line), { verb: "RSET" }, JSON.stringify(line));
  }
  deepStrictEqual(parse("quit"), { verb: "QUIT" });
  deepStrictEqual(parse("StartTLS"), { verb: "STARTTLS" });
  deepStrictEqual(parse("data "), { verb: "DATA" });
});

Deno.test("parseCommand: argument-less verbs refuse arguments, NOOP and HELP accept them", () => {
  for (const verb of ["STARTTLS", "DATA", "RSET", "QUIT"]) {
    deepStrictEqual(parse(`${verb} x`), { verb: "INVALID", name: verb, usage: verb });
  }
  deepStrictEqual(parse("NOOP anything at all"), { verb: "NOOP" });
  deepStrictEqual(parse("HELP MAIL"), { verb: "HELP" });
  deepStrictEqual(parse("VRFY alice"), { verb: "VRFY" });
  deepStrictEqual(parse("VRFY"), { verb: "INVALID", name: "VRFY", usage: "VRFY address" });
});

Deno.test("parseCommand: AUTH takes a mechanism and an optional initial response", () => {
  deepStrictEqual(parse("AUTH PLAIN"), { verb: "AUTH", mechanism: "PLAIN", initial: null });
  deepStrictEqual(parse("auth login dXNlcg=="), {
    verb: "AUTH",
    mechanism: "LOGIN",
    initial: "dXNlcg==",
  });
  deepStrictEqual(parse("AUTH PLAIN ="), { verb: "AUTH", mechanism: "PLAIN", initial: "=" });
  deepStrictEqual(parse("AUTH  PLAIN   AAAA"), {
    verb: "AUTH",
    mechanism: "PLAIN",
    initial: "AAAA",
  });
  const usage = "AUTH mechanism [initial-response]";
  deepStrictEqual(parse("AUTH"), { verb: "INVALID", name: "AUTH", usage });
  deepStrictEqual(parse("AUTH PLAIN a b"), { verb: "INVALID", name: "AUTH", usage });
});

Deno.test("parseCommand: MAIL FROM paths", () => {
  const mail = (address: string) => ({ verb: "MAIL", address, params: {} });
  deepStrictEqual(parse("MAIL FROM:<alice@example.com>"), mail("alice@example.com"));
  deepStrictEqual(parse("mail from:<alice@example.com>"), mail("alice@example.com"));
  deepStrictEqual(parse("MAIL FROM: <alice@example.com>"), mail("alice@example.com"));
  deepStrictEqual(parse("MAIL FROM:<>"), mail(""));
  // Source routes are accepted and ignored (RFC 5321 4.1.2, appendix C).
  deepStrictEqual(
    parse("MAIL FROM:<@relay.example,@b.example:alice@example.com>"),
    mail("alice@example.com"),
  );
  deepStrictEqual(parse('MAIL FROM:<"odd local"@example.com>'), mail('"odd local"@example.com'));
  deepStrictEqual(parse("MAIL FROM:<jörg@bücher.example>"), mail("jörg@bücher.example"));
});

Deno.test("parseCommand: bad MAIL FROM syntax", () => {
  const syntax = { verb: "INVALID", name: "MAIL", usage: MAIL_USAGE };
  const address = { ...syntax, reply: "address" };
  deepStrictEqual(parse("MAIL"), syntax);
  deepStrictEqual(parse("MAIL alice@example.com"), syntax);
  deepStrictEqual(parse("MAIL FROM:alice@example.com"), syntax);
  deepStrictEqual(parse("MAIL FROM:<alice@example.com"), syntax);
  deepStrictEqual(parse("MAIL TO:<alice@example.com>"), syntax);
  deepStrictEqual(parse("MAIL FROM:<alice>"), address);
  deepStrictEqual(parse("MAIL FROM:<@example.com>"), address);
  deepStrictEqual(parse("MAIL FROM:<alice@>"), address);
  deepStrictEqual(parse("MAIL FROM:<a b@example.com>"), address);
  deepStrictEqual(parse("MAIL FROM:<a<b@example.com>"), address);
  // Text after the closing bracket is a parameter, here an unknown one.
  deepStrictEqual(parse("MAIL FROM:<a@b>c>"), { ...syntax, name: "C>", reply: "parameter" });
  deepStrictEqual(parse(`MAIL FROM:<${"a".repeat(250)}@b.example>`), address);
});

Deno.test("parseCommand: MAIL FROM parameters", () => {
  deepStrictEqual(parse("MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8"), {
    verb: "MAIL",
    address: "a@b.example",
    params: { size: 1000, body: "8BITMIME", smtputf8: true },
  });
  deepStrictEqual(parse("MAIL FROM:<a@b.example>  size=0   body=7BIT "), {
    verb: "MAIL",
    address: "a@b.example",
    params: { size: 0, body: "7BIT" },
  });
  const value = (name: string) => ({ verb: "INVALID", name, usage: MAIL_USAGE, reply: "value" });
  deepStrictEqual(parse("MAIL FROM:<a@b.example> SIZE=abc"), value("SIZE"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> SIZE"), value("SIZE"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> SIZE=1234567890123456"), value("SIZE"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> BODY=BINARYMIME"), value("BODY"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> SMTPUTF8=yes"), value("SMTPUTF8"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> AUTH"), value("AUTH"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> AUTH=a=b"), value("AUTH"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> AUTH=a+zz"), value("AUTH"));
  const unknown = (name: string) => ({
    verb: "INVALID",
    name,
    usage: MAIL_USAGE,
    reply: "parameter",
  });
  deepStrictEqual(parse("MAIL FROM:<a@b.example> RET=HDRS"), unknown("RET"));
  deepStrictEqual(parse("MAIL FROM:<a@b.example> X"), unknown("X"));
});

Deno.test("parseCommand: MAIL FROM accepts (and ignores) the AUTH= parameter", () => {
  // RFC 4954 section 5: servers offering AUTH accept AUTH=<xtext> on MAIL FROM.
  for (const value of ["<>", "e+3Dmc2@example.com", "alice@example.com"]) {
    deepStrictEqual(parse(`MAIL FROM:<a@b.example> auth=${value} SIZE=5`), {
      verb: "MAIL",
      address: "a@b.example",
      params: { size: 5 },
    });
  }
});

Deno.test("parseCommand: RCPT TO", () => {
  deepStrictEqual(parse("RCPT TO:<x@dest.example>"), { verb: "RCPT", address: "x@dest.example" });
  deepStrictEqual(parse("rcpt to: <x@dest.example> "), { verb: "RCPT", address: "x@dest.example" });
  deepStrictEqual(parse("RCPT TO:<用户@例子.测试>"), { verb: "RCPT", address: "用户@例子.测试" });
  const syntax = { verb: "INVALID", name: "RCPT", usage: RCPT_USAGE };
  deepStrictEqual(parse("RCPT"), syntax);
  deepStrictEqual(parse("RCPT x@dest.example"), syntax);
  deepStrictEqual(parse("RCPT FROM:<x@dest.example>"), syntax);
  deepStrictEqual(parse("RCPT TO:<>"), { ...syntax, reply: "address" });
  deepStrictEqual(parse("RCPT TO:<nobody>"), { ...syntax, reply: "address" });
  deepStrictEqual(parse("RCPT TO:<x@dest.example> NOTIFY=NEVER"), {
    verb: "INVALID",
    name: "NOTIFY",
    usage: RCPT_USAGE,
    reply: "parameter",
  });
});

Deno.test("parseCommand: unimplemented, non-SMTP and unknown verbs", () => {
  for (const verb of ["BDAT", "ETRN", "TURN", "ATRN", "EXPN", "SEND", "SOML", "SAML"]) {
    deepStrictEqual(parse(`${verb.toLowerCase()} x`), { verb: "UNIMPLEMENTED", name: verb });
  }
  for (const line of ["GET / HTTP/1.1", "POST /x HTTP/1.0", "CONNECT a:25 HTTP/1.1", "Host: x"]) {
    deepStrictEqual(parse(line).verb, "FORBIDDEN", line);
  }
  deepStrictEqual(parse("GET / HTTP/1.1"), { verb: "FORBIDDEN", name: "GET" });
  deepStrictEqual(parse("Subject: hello"), { verb: "FORBIDDEN", name: "SUBJECT:" });
  deepStrictEqual(parse("XYZZY"), { verb: "UNKNOWN", name: "XYZZY" });
  deepStrictEqual(parse(""), { verb: "UNKNOWN", name: "" });
  deepStrictEqual(parse("X".repeat(100)), { verb: "UNKNOWN", name: "X".repeat(32) });
});

Deno.test("parseCommand: NUL, control characters and invalid UTF-8 are BAD_BYTES", () => {
  deepStrictEqual(parse("NOOP\0"), { verb: "BAD_BYTES" });
  deepStrictEqual(parse("EHLO a\x1bb"), { verb: "BAD_BYTES" });
  deepStrictEqual(parse("NOOP\x7f"), { verb: "BAD_BYTES" });
  deepStrictEqual(parse("NOOP\r"), { verb: "BAD_BYTES" });
  deepStrictEqual(parse(new Uint8Array([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xc3])), {
    verb: "BAD_BYTES",
  });
  deepStrictEqual(parse(new Uint8Array([0xff, 0xfe])), { verb: "BAD_BYTES" });
  // A tab inside arguments is not a control character we refuse.
  deepStrictEqual(parse("NOOP a\tb"), { verb: "NOOP" });
});
