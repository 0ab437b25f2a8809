/**
 * DKIM signing on submission, checked by an independent verifier (Debian's
 * dkimpy) with the public keys `relay dkim dns` prints: Ed25519 and RSA
 * signatures on what reached a real backend, an altered message failing,
 * pass-through signing, rotation, and the From: header bound to the user.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runDkimCommand } from "../src/cli/dkim.ts";
import { parseConfig } from "../src/config/mod.ts";
import { preflight } from "../src/cli/check.ts";
import { SmtpSink } from "./support/sink.ts";
import { connectAs, startTestRelay, type TestRelay, USERS } from "./support/relay.ts";
import { parseZoneLines, verifyDkim } from "./support/dkim_verify.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs `relay dkim ARGS` against keys in `dir`; its exit code and output. */
async function dkim(dir: string, ...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const config = parseConfig({ dkim: { dir } }, "test");
  const code = await runDkimCommand(args, config, {
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** A message with 8-bit content, lines the client dot-stuffs, and a body of `bodyLines` lines. */
function message(from: string, bodyLines: number, extraHeaders = ""): string {
  const lines = [
    `From: Alice Ärger <${from}>`,
    "To: Bob <bob@example.net>",
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
    "Date: Sun, 29 Nov 2026 12:00:00 +0000",
    "Message-ID: <dkim-test@example.com>",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
  ];
  const body = [
    "Grüße aus Köln — 8-bit UTF-8 body.",
    ".a line that starts with a dot",
    "..two dots",
    ".",
    "trailing spaces and\ttabs   ",
  ];
  for (let i = 0; i < bodyLines; i++) body.push(`line ${i} ${"x".repeat(70)} ü`);
  body.push("", "", ""); // trailing empty lines: relaxed canonicalization drops them
  return `${extraHeaders}${lines.join("\r\n")}\r\n\r\n${body.join("\r\n")}\r\n`;
}

async function submit(t: TestRelay, data: string, user = USERS[0]) {
  const c = await connectAs(t, user);
  try {
    return await c.send({ from: user.email, to: ["bob@example.net"], data: encoder.encode(data) });
  } catch (error) {
    const reply = (error as { reply?: { code: number; enhanced?: string; lines?: string[] } })
      .reply;
    if (!reply) throw error;
    return { final: reply };
  } finally {
    await c.quit().catch(() => {});
  }
}

Deno.test("DKIM: messages are signed with Ed25519 and RSA keys that dkimpy verifies from `relay dkim dns`", async (t) => {
  const keys = await Deno.makeTempDir({ prefix: "relay-dkim-" });
  const generated = await dkim(keys, "generate", "--domain", "example.com");
  assert.equal(generated.code, 0, generated.err);
  const dns = await dkim(keys, "dns");
  assert.equal(dns.code, 0, dns.err);
  const records = parseZoneLines(dns.out);
  assert.deepEqual(Object.keys(records).length, 2);
  const sink = await SmtpSink.start();
  const relay = await startTestRelay({
    config: {
      relay: { url: `smtp://127.0.0.1:${sink.port}?tls=none` },
      dkim: { dir: keys },
    },
  });
  try {
    let signed: Uint8Array | undefined;
    await t.step("a long 8-bit message with dot-stuffed lines verifies for both keys", async () => {
      const data = message("alice@example.com", 8000); // ~700 KB: the body spills to disk
      const result = await submit(relay, data);
      assert.equal(result.final?.code, 250);
      await until("the backend has the message", () => sink.messages.length === 1);
      signed = sink.messages[0].data;
      const text = decoder.decode(signed);
      // The signatures come first, then our Received:, then the message as sent.
      assert.match(
        text,
        /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=example\.com;/,
      );
      assert.match(
        text,
        /\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;/,
      );
      assert.ok(text.endsWith(data), "the message after our headers is byte for byte the client's");
      const verdicts = await verifyDkim(signed, records);
      assert.deepEqual(
        verdicts.map((v) => [v.a, v.d, v.ok, v.error]),
        [["ed25519-sha256", "example.com", true, null], ["rsa-sha256", "example.com", true, null]],
      );
      // Over-signed: a From: added later breaks the signature.
      assert.match(text, /h=[^;]*From: To: Subject: Date: Reply-To: Message-ID;/);
    });

    await t.step("a message altered after signing fails verification", async () => {
      const text = decoder.decode(signed!);
      const body = encoder.encode(text.replace("line 4000 ", "line 4001 "));
      const verdicts = await verifyDkim(body, records);
      assert.deepEqual(verdicts.map((v) => v.ok), [false, false]);
      assert.match(verdicts[0].error ?? "", /body hash mismatch/);
      const header = encoder.encode(text.replace("Subject: =?UTF-8?Q?Gr", "Subject: =?UTF-8?Q?Kr"));
      assert.deepEqual((await verifyDkim(header, records)).map((v) => v.ok), [false, false]);
      const added = encoder.encode(
        text.replace("\r\nTo: Bob", "\r\nFrom: mallory@example.com\r\nTo: Bob"),
      );
      assert.deepEqual((await verifyDkim(added, records)).map((v) => v.ok), [false, false]);
    });

    await t.step(
      "a domain without keys is relayed unsigned; metrics count signed and unsigned messages",
      async () => {
        // bob@company.com has no key: relayed unsigned.
        const result = await submit(
          relay,
          "From: bob@company.com\r\nSubject: x\r\n\r\nunsigned\r\n",
          USERS[1],
        );
        assert.equal(result.final?.code, 250);
        await until("the backend has both", () => sink.messages.length === 2);
        assert.ok(!decoder.decode(sink.messages[1].data).includes("DKIM-Signature"));
        const metrics = await relay.relay.metrics.text();
        assert.match(metrics, /relay_dkim_messages_total\{result="signed"\} 1\n/);
        assert.match(metrics, /relay_dkim_messages_total\{result="unsigned"\} 1\n/);
      },
    );

    await t.step(
      "rotation: the new selector is published beside the old and signs after reload",
      async () => {
        const rotated = await dkim(keys, "rotate", "--domain", "example.com", "--wait", "0");
        assert.equal(rotated.code, 0, rotated.err);
        const after = parseZoneLines((await dkim(keys, "dns", "--domain", "example.com")).out);
        assert.equal(Object.keys(after).length, 4, "old and new selectors are both published");
        const list = await dkim(keys, "list");
        assert.equal(list.out.split("\n").filter((l) => /\tretired\t/.test(l)).length, 2);
        assert.equal(list.out.split("\n").filter((l) => /\tactive\t/.test(l)).length, 2);
        await relay.relay.reloadDkim();
        const result = await submit(relay, message("alice@example.com", 3));
        assert.equal(result.final?.code, 250);
        await until("the backend has it", () => sink.messages.length === 3);
        const verdicts = await verifyDkim(sink.messages[2].data, after);
        assert.deepEqual(verdicts.map((v) => v.ok), [true, true]);
        const newSelectors = Object.keys(after).filter((name) => !(name in records))
          .map((name) => name.split(".")[0]).sort();
        assert.deepEqual(verdicts.map((v) => v.s).sort(), newSelectors);
      },
    );
  } finally {
    await relay.close();
    await sink.close();
    await Deno.remove(keys, { recursive: true });
  }
});

Deno.test("DKIM: pass-through mode signs what it relays", async () => {
  const keys = await Deno.makeTempDir({ prefix: "relay-dkim-" });
  assert.equal((await dkim(keys, "generate", "--domain", "example.com")).code, 0);
  const records = parseZoneLines((await dkim(keys, "dns")).out);
  const sink = await SmtpSink.start();
  const relay = await startTestRelay({
    config: {
      relay: { url: `smtp://127.0.0.1:${sink.port}?tls=none`, mode: "passthrough" },
      dkim: { dir: keys },
    },
  });
  try {
    const result = await submit(relay, message("alice@example.com", 4000));
    // The backend's own reply: relayed while the client waited, not queued.
    assert.deepEqual(result.final?.lines, ["2.0.0 Ok: queued"]);
    assert.equal(sink.messages.length, 1);
    const verdicts = await verifyDkim(sink.messages[0].data, records);
    assert.deepEqual(verdicts.map((v) => [v.a, v.ok]), [
      ["ed25519-sha256", true],
      ["rsa-sha256", true],
    ]);
    assert.deepEqual(await relay.relay.spool.list(), []);
  } finally {
    await relay.close();
    await sink.close();
    await Deno.remove(keys, { recursive: true });
  }
});

Deno.test("header_from: the From: header is bound to the user's domain (550 5.7.1), one From: with one address (550 5.6.0)", async (t) => {
  const sink = await SmtpSink.start();
  const relay = await startTestRelay({
    config: { relay: { url: `smtp://127.0.0.1:${sink.port}?tls=none` } },
  });
  const refused = async (data: string, code: number, enhanced: string, text: RegExp) => {
    const result = await submit(relay, data);
    assert.equal(result.final?.code, code);
    assert.equal(result.final?.enhanced, enhanced);
    assert.match(result.final?.lines?.join(" ") ?? "", text);
  };
  try {
    await t.step("a From: of another domain is refused and audited", async () => {
      await refused(
        "From: Boss <ceo@company.com>\r\nSubject: pay this\r\n\r\nnow\r\n",
        550,
        "5.7.1",
        /From: header address ceo@company\.com is not allowed for this user \(must be an address in example\.com\)/,
      );
      const event = relay.audit.events.find((e) => e.event === "header_from_mismatch");
      assert.equal(event?.email, "alice@example.com");
      assert.equal(event?.header_from, "ceo@company.com");
    });
    await t.step("two From: fields are refused", async () => {
      await refused(
        "From: alice@example.com\r\nFrom: ceo@company.com\r\n\r\nx\r\n",
        550,
        "5.6.0",
        /more than one From: header/,
      );
    });
    await t.step("two addresses, or a malformed one, are refused", async () => {
      await refused(
        "From: alice@example.com, ceo@company.com\r\n\r\nx\r\n",
        550,
        "5.6.0",
        /exactly one address/,
      );
      await refused("From: <alice@example.com\r\n\r\nx\r\n", 550, "5.6.0", /malformed/);
      const reasons = relay.audit.events.filter((e) => e.event === "header_from_invalid")
        .map((e) => e.reason);
      assert.deepEqual(reasons, ["duplicate", "multiple", "malformed"]);
    });
    await t.step("a folded From: in the user's domain, any case, is accepted", async () => {
      const result = await submit(
        relay,
        'From: "Smith, Alice (Sales)"\r\n <Alice.Other@EXAMPLE.com>\r\nSubject: ok\r\n\r\nok\r\n',
      );
      assert.equal(result.final?.code, 250);
    });
    await t.step("nothing refused reached the backend", async () => {
      await until("the accepted one was delivered", () => sink.messages.length === 1);
      assert.match(decoder.decode(sink.messages[0].data), /Alice\.Other@EXAMPLE\.com/);
    });
  } finally {
    await relay.close();
    await sink.close();
  }
});

Deno.test('header_from = "address": only the user\'s own address; "any": not checked', async () => {
  for (const [mode, expected] of [["address", 550], ["any", 250]] as const) {
    const relay = await startTestRelay({ config: { policy: { header_from: mode } } });
    try {
      const other = await submit(relay, "From: carol@example.com\r\n\r\nx\r\n");
      assert.equal(other.final?.code, expected, mode);
      const own = await submit(relay, "From: ALICE@example.com\r\n\r\nx\r\n");
      assert.equal(own.final?.code, 250, mode);
    } finally {
      await relay.close();
    }
  }
});

Deno.test("relay dkim: keys are 0600, DNS values split in 255-byte strings, errors name the problem", async () => {
  const keys = await Deno.makeTempDir({ prefix: "relay-dkim-" });
  try {
    const made = await dkim(
      keys,
      "generate",
      "--domain",
      "Example.ORG",
      "--selector",
      "mail",
      "--algorithm",
      "rsa",
    );
    assert.equal(made.code, 0, made.err);
    const stat = await Deno.stat(join(keys, "example.org", "mail.pem"));
    assert.equal(stat.mode! & 0o777, 0o600);
    const line = made.out.split("\n").find((l) => l.startsWith("mail._domainkey.example.org. "));
    assert.ok(line, made.out);
    const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    assert.ok(strings.length >= 2 && strings.every((s) => s.length <= 255), line);
    assert.match(strings.join(""), /^v=DKIM1; k=rsa; p=MIIBIjAN/);
    const again = await dkim(keys, "generate", "--domain", "example.org", "--algorithm", "rsa");
    assert.equal(again.code, 1);
    assert.match(again.err, /already has a rsa key \(selector mail\); use relay dkim rotate/);
    const bad = await dkim(keys, "generate", "--domain", "example.org", "--algorithm", "dsa");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--algorithm must be ed25519 or rsa/);
    const none = await dkim(keys, "rotate", "--domain", "nokeys.example");
    assert.equal(none.code, 1);
    assert.match(none.err, /has no key to rotate/);
  } finally {
    await Deno.remove(keys, { recursive: true });
  }
});

Deno.test("a header block over 64 KiB: relayed unsigned when From: is not checked, else 552 5.6.0", async () => {
  const keys = await Deno.makeTempDir({ prefix: "relay-dkim-" });
  assert.equal((await dkim(keys, "generate", "--domain", "example.com")).code, 0);
  const sink = await SmtpSink.start();
  const big = Array.from({ length: 900 }, (_, i) => `X-Filler-${i}: ${"f".repeat(70)}\r\n`)
    .join("");
  const data = message("alice@example.com", 2, big);
  for (const mode of ["any", "domain"] as const) {
    const relay = await startTestRelay({
      config: {
        relay: { url: `smtp://127.0.0.1:${sink.port}?tls=none` },
        dkim: { dir: keys },
        policy: { header_from: mode },
      },
    });
    try {
      const result = await submit(relay, data);
      if (mode === "any") {
        assert.equal(result.final?.code, 250);
        await until("the backend has it", () => sink.messages.length === 1);
        const text = decoder.decode(sink.messages[0].data);
        assert.ok(!text.includes("DKIM-Signature:"));
        assert.ok(text.endsWith(data));
      } else {
        assert.equal(result.final?.code, 552);
        assert.equal(result.final?.enhanced, "5.6.0");
        assert.equal(sink.messages.length, 1, "the refused message never reached the backend");
      }
    } finally {
      await relay.close();
    }
  }
  await sink.close();
  await Deno.remove(keys, { recursive: true });
});

Deno.test("relay check (and serve) name dkim.dir when a key cannot be read", async () => {
  const keys = await Deno.makeTempDir({ prefix: "relay-dkim-" });
  try {
    const made = await dkim(keys, "generate", "--domain", "example.com", "--algorithm", "ed25519");
    assert.equal(made.code, 0, made.err);
    const selector = made.out.match(/^; example\.com ed25519 selector (\S+)/m)![1];
    await Deno.remove(join(keys, "example.com", `${selector}.pem`));
    const config = parseConfig(
      { dkim: { dir: keys }, tls: { generate_if_missing: false } },
      "test",
    );
    const issues = (await preflight(config)).filter((issue) => issue.key === "dkim.dir");
    assert.equal(issues.length, 1);
    assert.match(issues[0].message, new RegExp(`cannot read the key ${selector} of example\\.com`));
    await Deno.writeTextFile(join(keys, "example.com", "keys.json"), "{not json");
    const broken = (await preflight(config)).filter((issue) => issue.key === "dkim.dir");
    assert.equal(broken.length, 1);
    assert.match(broken[0].message, /example\.com\/keys\.json: not valid JSON/);
  } finally {
    await Deno.remove(keys, { recursive: true });
  }
});
