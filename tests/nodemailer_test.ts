/**
 * Interoperability with a real, widely used client: nodemailer over SMTPS
 * and STARTTLS with PLAIN and LOGIN, and a pooled transport sending 200
 * messages. Every message must reach the outbox byte-exact: the stored
 * `.eml` minus our Received header equals the bytes nodemailer built.
 */
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { splitReceived, waitForMessage } from "./support/raw_client.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";

/** Builds a message's exact bytes with nodemailer's own composer (CRLF line ends). */
async function compose(mail: Record<string, unknown>): Promise<Uint8Array> {
  const builder = nodemailer.createTransport({
    streamTransport: true,
    buffer: true,
    newline: "windows",
  });
  const info = await builder.sendMail(mail);
  builder.close();
  let bytes = new Uint8Array(info.message as unknown as Buffer);
  // SMTP ends the data with CRLF; make sure our copy does too.
  if (bytes[bytes.length - 2] !== 13 || bytes[bytes.length - 1] !== 10) {
    bytes = new Uint8Array([...bytes, 13, 10]);
  }
  return bytes;
}

/** A varied message: UTF-8 text, lines starting with dots, a long line, an attachment. */
function sampleMail(n: number, from: string): Record<string, unknown> {
  return {
    from,
    to: `rcpt${n}@dest.example`,
    subject: `Message ${n} — grüße`,
    messageId: `<msg-${n}@client.example>`,
    date: new Date(Date.UTC(2026, 10, 27, 12, 0, n % 60)),
    text: `Hello ${n}\n.a line starting with a dot\n..two dots\n.\n${"long ".repeat(300)}\nend`,
    html: `<p>Hello <b>${n}</b> — ünïcödé</p>`,
    attachments: n % 3 === 0
      ? [{
        filename: "data.bin",
        content: Buffer.from(Array.from({ length: 700 }, (_, i) => i % 256)),
      }]
      : [],
  };
}

function queueIdOf(response: string): string {
  const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(response);
  if (!m) throw new Error(`unexpected response ${response}`);
  return m[1];
}

/** Checks the outbox copy of `id` is `raw` after our Received header. */
async function assertStoredExactly(relay: TestRelay, id: string, raw: Uint8Array): Promise<void> {
  const stored = await waitForMessage(relay.outbox, id);
  const { received, rest } = splitReceived(stored);
  match(received, new RegExp(`with ESMTPSA id ${id}\\r\\n`));
  deepStrictEqual(rest, raw);
}

const ALICE = { user: "alice@example.com", pass: "alice-secret-1" };
const BOB = { user: "bob@company.com", pass: "bob-secret-2" };

Deno.test("nodemailer: SMTPS and STARTTLS, PLAIN and LOGIN, byte-exact delivery", async (t) => {
  const relay = await startTestRelay();
  try {
    const variants = [
      { name: "SMTPS + PLAIN", secure: true, authMethod: "PLAIN", auth: ALICE },
      { name: "SMTPS + LOGIN", secure: true, authMethod: "LOGIN", auth: BOB },
      { name: "STARTTLS + PLAIN", secure: false, authMethod: "PLAIN", auth: BOB },
      { name: "STARTTLS + LOGIN", secure: false, authMethod: "LOGIN", auth: ALICE },
    ];
    for (const [i, v] of variants.entries()) {
      await t.step(v.name, async () => {
        const transport = nodemailer.createTransport({
          host: "127.0.0.1",
          port: v.secure ? relay.smtpsPort : relay.submissionPort,
          secure: v.secure,
          requireTLS: !v.secure,
          authMethod: v.authMethod,
          auth: v.auth,
          tls: { ca: [relay.caPem], servername: "localhost" },
        });
        try {
          ok(await transport.verify());
          const mail = sampleMail(i, v.auth.user);
          const raw = await compose(mail);
          const info = await transport.sendMail({
            envelope: { from: v.auth.user, to: [`rcpt${i}@dest.example`] },
            raw: Buffer.from(raw),
          });
          deepStrictEqual(info.accepted, [`rcpt${i}@dest.example`]);
          await assertStoredExactly(relay, queueIdOf(info.response), raw);
          // A composed (non-raw) message also goes through.
          const composed = await transport.sendMail(mail);
          deepStrictEqual(composed.rejected, []);
          queueIdOf(composed.response);
        } finally {
          transport.close();
        }
      });
    }

    await t.step("wrong password: nodemailer reports the 535", async () => {
      const transport = nodemailer.createTransport({
        host: "127.0.0.1",
        port: relay.smtpsPort,
        secure: true,
        auth: { user: "alice@example.com", pass: "wrong" },
        tls: { ca: [relay.caPem], servername: "localhost" },
      });
      try {
        await rejects(
          transport.sendMail({ from: "alice@example.com", to: "x@dest.example", text: "x" }),
          (error: { responseCode?: number; response?: string }) => {
            strictEqual(error.responseCode, 535);
            strictEqual(error.response, "535 5.7.8 Error: authentication failed");
            return true;
          },
        );
      } finally {
        transport.close();
      }
    });

    await t.step("domain mismatch: nodemailer reports the exact 550", async () => {
      const transport = nodemailer.createTransport({
        host: "127.0.0.1",
        port: relay.smtpsPort,
        secure: true,
        auth: ALICE,
        tls: { ca: [relay.caPem], servername: "localhost" },
      });
      try {
        await rejects(
          transport.sendMail({ from: "bob@company.com", to: "x@dest.example", text: "x" }),
          (error: { responseCode?: number; response?: string }) => {
            strictEqual(error.responseCode, 550);
            strictEqual(
              error.response,
              "550 5.7.1 Domain mismatch: authenticated domain (example.com) does not match " +
                "MAIL FROM domain (company.com)",
            );
            return true;
          },
        );
      } finally {
        transport.close();
      }
    });
  } finally {
    await relay.close();
  }
});

Deno.test("nodemailer: a pooled transport sends 200 messages, all byte-exact", async () => {
  const relay = await startTestRelay();
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: 4,
    host: "127.0.0.1",
    port: relay.smtpsPort,
    secure: true,
    auth: ALICE,
    tls: { ca: [relay.caPem], servername: "localhost" },
  });
  try {
    const count = 200;
    const raws = await Promise.all(
      Array.from({ length: count }, (_, n) => compose(sampleMail(n, ALICE.user))),
    );
    // The messages exercise dot-stuffing: lines that start with a dot, and a lone dot.
    const text = new TextDecoder().decode(raws[0]);
    ok(text.includes("\r\n.a line starting with a dot\r\n") && text.includes("\r\n.\r\n"));
    const infos = await Promise.all(raws.map((raw, n) =>
      transport.sendMail({
        envelope: { from: ALICE.user, to: [`rcpt${n}@dest.example`] },
        raw: Buffer.from(raw),
      })
    ));
    const ids = infos.map((info) => queueIdOf(info.response));
    strictEqual(new Set(ids).size, count, "queue ids must be unique");
    for (const [n, id] of ids.entries()) await assertStoredExactly(relay, id, raws[n]);
    strictEqual((await relay.outboxFiles()).length, count);
    // Four connections at most were used (one AUTH each, all successful).
    const auths = relay.audit.events.filter((e) => e.event === "auth_attempt");
    ok(auths.length >= 1 && auths.length <= 4, `${auths.length} AUTHs`);
    ok(auths.every((e) => e.success === true));
  } finally {
    transport.close();
    await relay.close();
  }
});
