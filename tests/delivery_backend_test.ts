/**
 * The SMTP backend against the in-test sink: TLS (STARTTLS, implicit),
 * AUTH, per-recipient outcomes, extension checks (8BITMIME, SMTPUTF8, SIZE)
 * and per-sender-domain routing.
 */
import { ChunkPipe, type Envelope } from "../src/mail/mod.ts";
import assert from "node:assert/strict";
import { makeTestCertificates, type TestCertificates } from "../src/delivery/_smtp_test_server.ts";
import {
  type DeliveryBackend,
  relayPassthrough,
  RoutingBackend,
  SmtpBackend,
  type SmtpBackendOptions,
} from "../src/delivery/mod.ts";
import { type SinkOptions, SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
let counter = 0;

function envelope(overrides: Partial<Envelope> = {}): Envelope {
  counter++;
  return {
    v: 1,
    id: `19C2F3A4B5C${String(counter).padStart(10, "0")}`.slice(0, 21),
    from: "alice@example.com",
    recipients: ["bob@dest.org"],
    receivedAt: new Date().toISOString(),
    client: { address: "127.0.0.1", helo: "test" },
    ...overrides,
  };
}

function message(subject: string, body = "hello\r\n"): Uint8Array {
  return encoder.encode(`Subject: ${subject}\r\nFrom: alice@example.com\r\n\r\n${body}`);
}

/** Runs `fn` with a fresh test CA and a localhost certificate signed by it. */
async function withCerts(fn: (certs: TestCertificates) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_backend_certs_" });
  try {
    await fn(await makeTestCertificates(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function withSink(
  sinkOptions: SinkOptions,
  backendOptions: Partial<SmtpBackendOptions>,
  fn: (sink: SmtpSink, backend: SmtpBackend) => Promise<void>,
): Promise<void> {
  const sink = await SmtpSink.start(sinkOptions);
  const backend = new SmtpBackend({
    route: "default",
    host: "127.0.0.1",
    port: sink.port,
    security: "none",
    display: `smtp://127.0.0.1:${sink.port}`,
    ehloName: "relay.test",
    poolSize: 2,
    timeouts: { connect: 5000, command: 5000, data: 5000 },
    ...backendOptions,
  });
  try {
    await fn(sink, backend);
  } finally {
    await backend.close();
    await sink.close();
  }
}

Deno.test("backend: STARTTLS and AUTH required by the backend; bytes arrive exactly", async () => {
  await withCerts(async (c) => {
    await withSink(
      {
        tls: { cert: c.cert, key: c.key },
        requireTls: true,
        auth: { username: "relay@dest.org", password: "s3cret-pw" },
      },
      {
        security: "starttls",
        caCerts: [c.caCert],
        username: "relay@dest.org",
        password: "s3cret-pw",
      },
      async (sink, backend) => {
        const data = message("tls+auth", ".leading dot\r\n..two dots\r\nend\r\n");
        const env = envelope({ recipients: ["bob@dest.org", "carol@dest.org"] });
        const outcomes = await backend.deliver(env, data, env.recipients);
        assert.deepEqual(outcomes.map((o) => o.status), ["delivered", "delivered"]);
        assert.match(outcomes[0].reply, /^250 2\.0\.0/);
        assert.equal(sink.messages.length, 1);
        const got = sink.messages[0];
        assert.equal(got.tls, true);
        assert.equal(got.user, "relay@dest.org");
        assert.equal(got.from, "alice@example.com");
        assert.deepEqual(got.recipients, ["bob@dest.org", "carol@dest.org"]);
        assert.deepEqual(got.data, data);
        assert.ok(got.mailParams.includes(`SIZE=${data.length}`) === false, "sink offers no SIZE");
      },
    );
  });
});

Deno.test("backend: wrong AUTH password defers without leaking it", async () => {
  await withCerts(async (c) => {
    await withSink(
      {
        tls: { cert: c.cert, key: c.key },
        requireTls: true,
        auth: { username: "u", password: "p" },
      },
      { security: "starttls", caCerts: [c.caCert], username: "u", password: "wrong-pw-123" },
      async (sink, backend) => {
        const env = envelope();
        const [outcome] = await backend.deliver(env, message("x"), env.recipients);
        assert.equal(outcome.status, "deferred");
        assert.match(outcome.reply, /535 5\.7\.8/);
        assert.ok(!outcome.reply.includes("wrong-pw-123"));
        assert.equal(sink.messages.length, 0);
      },
    );
  });
});

Deno.test("backend: implicit TLS (smtps)", async () => {
  await withCerts(async (c) => {
    await withSink(
      { tls: { cert: c.cert, key: c.key }, implicitTls: true },
      { security: "implicit", caCerts: [c.caCert] },
      async (sink, backend) => {
        const env = envelope();
        const [outcome] = await backend.deliver(env, message("smtps"), env.recipients);
        assert.equal(outcome.status, "delivered");
        assert.equal(sink.messages[0].tls, true);
      },
    );
  });
});

Deno.test("backend: outcome per recipient from the backend's RCPT replies", async () => {
  await withSink({}, {}, async (sink, backend) => {
    sink.rcptReply = (rcpt) =>
      rcpt.startsWith("gone@")
        ? "550 5.1.1 no such user"
        : rcpt.startsWith("later@")
        ? "451 4.2.0 mailbox busy"
        : undefined;
    const env = envelope({ recipients: ["ok@dest.org", "gone@dest.org", "later@dest.org"] });
    const outcomes = await backend.deliver(env, message("mixed"), env.recipients);
    assert.deepEqual(
      outcomes.map((o) => [o.recipient, o.status, o.enhanced]),
      [
        ["ok@dest.org", "delivered", "2.0.0"],
        ["gone@dest.org", "failed", "5.1.1"],
        ["later@dest.org", "deferred", "4.2.0"],
      ],
    );
    assert.deepEqual(sink.messages.map((m) => m.recipients), [["ok@dest.org"]]);
    // MAIL refused: every recipient takes its reply.
    sink.rcptReply = undefined;
    sink.mailReply = () => "550 5.7.1 sender refused";
    const again = await backend.deliver(env, message("refused"), ["ok@dest.org"]);
    assert.equal(again[0].status, "failed");
    assert.match(again[0].reply, /^550 5\.7\.1 sender refused/);
    // The final reply after the data decides for accepted recipients.
    sink.mailReply = undefined;
    sink.dataReply = () => "452 4.3.1 insufficient storage";
    const data = await backend.deliver(env, message("full"), ["ok@dest.org"]);
    assert.equal(data[0].status, "deferred");
    assert.equal(data[0].enhanced, "4.3.1");
  });
});

Deno.test("backend: 8-bit message to a backend without 8BITMIME fails 5.6.3, never downgraded", async () => {
  await withSink({ eightBitMime: false }, {}, async (sink, backend) => {
    const env = envelope({ body: "8BITMIME" });
    const eightBit = encoder.encode("Subject: caf\u00e9\r\n\r\nna\u00efve body\r\n");
    const [outcome] = await backend.deliver(env, eightBit, env.recipients);
    assert.equal(outcome.status, "failed");
    assert.equal(outcome.enhanced, "5.6.3");
    assert.equal(sink.count("MAIL"), 0, "nothing was sent");
    // Declared 8BITMIME but 7-bit bytes: sent as is, without BODY=.
    const [plain] = await backend.deliver(env, message("ascii"), env.recipients);
    assert.equal(plain.status, "delivered");
    assert.deepEqual(sink.messages[0].mailParams, []);
  });
  await withSink({}, {}, async (sink, backend) => {
    const env = envelope();
    const eightBit = encoder.encode("Subject: x\r\n\r\n\u00e9t\u00e9\r\n");
    const [outcome] = await backend.deliver(env, eightBit, env.recipients);
    assert.equal(outcome.status, "delivered");
    assert.deepEqual(sink.messages[0].mailParams, ["BODY=8BITMIME"]);
    assert.deepEqual(sink.messages[0].data, eightBit);
  });
});

Deno.test("backend: SMTPUTF8 message to a backend without SMTPUTF8 fails 5.6.7", async () => {
  await withSink({ smtputf8: false }, {}, async (sink, backend) => {
    const env = envelope({ smtputf8: true, recipients: ["j\u00fcrgen@dest.org"] });
    const [outcome] = await backend.deliver(env, message("utf8"), env.recipients);
    assert.equal(outcome.status, "failed");
    assert.equal(outcome.enhanced, "5.6.7");
    assert.equal(sink.count("MAIL"), 0);
    // SMTPUTF8 asked for, but nothing in it needs it: goes through without.
    const ascii = envelope({ smtputf8: true });
    const [ok] = await backend.deliver(ascii, message("plain"), ascii.recipients);
    assert.equal(ok.status, "delivered");
    assert.deepEqual(sink.messages[0].mailParams, []);
  });
  await withSink({}, {}, async (sink, backend) => {
    const env = envelope({ smtputf8: true, recipients: ["j\u00fcrgen@dest.org"] });
    const [outcome] = await backend.deliver(env, message("utf8"), env.recipients);
    assert.equal(outcome.status, "delivered");
    assert.ok(sink.messages[0].mailParams.includes("SMTPUTF8"));
    assert.deepEqual(sink.messages[0].recipients, ["j\u00fcrgen@dest.org"]);
  });
});

Deno.test("backend: the backend's SIZE is declared and respected", async () => {
  await withSink({ size: 200 }, {}, async (sink, backend) => {
    const env = envelope();
    const small = message("small");
    const [ok] = await backend.deliver(env, small, env.recipients);
    assert.equal(ok.status, "delivered");
    assert.deepEqual(sink.messages[0].mailParams, [`SIZE=${small.length}`]);
    const big = message("big", "x".repeat(300) + "\r\n");
    const [tooBig] = await backend.deliver(env, big, env.recipients);
    assert.equal(tooBig.status, "failed");
    assert.equal(tooBig.enhanced, "5.3.4");
    assert.equal(sink.count("MAIL"), 1);
  });
});

Deno.test("backend: without PIPELINING one command at a time, same result", async () => {
  await withSink({ pipelining: false }, {}, async (sink, backend) => {
    sink.rcptReply = (r) => r.startsWith("gone@") ? "550 5.1.1 unknown" : undefined;
    const env = envelope({ recipients: ["a@dest.org", "gone@dest.org"] });
    const outcomes = await backend.deliver(env, message("np"), env.recipients);
    assert.deepEqual(outcomes.map((o) => o.status), ["delivered", "failed"]);
    const second = await backend.deliver(env, message("np2"), ["a@dest.org"]);
    assert.equal(second[0].status, "delivered");
    assert.equal(sink.connections, 1);
    assert.equal(sink.count("RSET"), 1, "RSET before the reused connection's transaction");
  });
});

Deno.test("routing: a sender domain's route, the default for others, bounces by recipient", async () => {
  const a = await SmtpSink.start();
  const b = await SmtpSink.start();
  const make = (sink: SmtpSink, route: string) =>
    new SmtpBackend({
      route,
      host: "127.0.0.1",
      port: sink.port,
      security: "none",
      display: `smtp://127.0.0.1:${sink.port}`,
      ehloName: "relay.test",
      poolSize: 1,
    });
  const backend: DeliveryBackend = new RoutingBackend(
    make(a, "default"),
    new Map([["Company.COM", make(b, "company.com")]]),
  );
  try {
    const fromCompany = envelope({ from: "bob@company.com" });
    const [viaB] = await backend.deliver(fromCompany, message("b"), fromCompany.recipients);
    assert.match(viaB.via ?? "", /^company\.com smtp:\/\/127\.0\.0\.1:/);
    const other = envelope({ from: "alice@example.com" });
    await backend.deliver(other, message("a"), other.recipients);
    const bounce = envelope({ from: "", recipients: ["bob@company.com"] });
    await backend.deliver(bounce, message("dsn"), bounce.recipients);
    assert.deepEqual(a.messages.map((m) => m.from), ["alice@example.com"]);
    assert.deepEqual(b.messages.map((m) => m.from), ["bob@company.com", ""]);
  } finally {
    await backend.close();
    await a.close();
    await b.close();
  }
});

Deno.test("passthrough: streams a transaction and returns the backend's final reply", async () => {
  await withSink({}, {}, async (sink, backend) => {
    sink.dataReply = undefined;
    const chunks = ["Subject: stream\r\n", "\r\n", ".dot line\r\n", "end\r\n"];
    async function* source() {
      for (const c of chunks) yield encoder.encode(c);
    }
    const env = envelope();
    const result = await relayPassthrough(backend, env, source());
    assert.equal(result.reply.code, 250);
    assert.equal(result.reply.enhanced, "2.0.0");
    assert.equal(sink.texts()[0], chunks.join(""));
    // Refused envelope: the source is still read to its end.
    sink.mailReply = () => "550 5.7.1 not you";
    let read = 0;
    async function* counted() {
      for (const c of chunks) {
        read++;
        yield encoder.encode(c);
      }
    }
    const refused = await relayPassthrough(backend, envelope(), counted());
    assert.equal(refused.reply.code, 550);
    assert.equal(refused.reply.enhanced, "5.7.1");
    assert.equal(read, chunks.length);
    assert.equal(refused.recipients[0].status, "failed");
  });
});

Deno.test("passthrough: a pushed DATA stream through ChunkPipe; a client gone mid-way delivers nothing", async () => {
  await withSink({}, {}, async (sink, backend) => {
    const pipe = new ChunkPipe(16);
    const relayed = relayPassthrough(backend, envelope(), pipe);
    pipe.push(encoder.encode("Subject: piped\r\n\r\n"));
    for (let i = 0; i < 20; i++) {
      pipe.push(encoder.encode(`line ${i}\r\n`));
      await pipe.drain(); // back-pressure: waits for the backend side to take it
    }
    pipe.end();
    const result = await relayed;
    assert.equal(result.reply.code, 250);
    assert.match(sink.texts()[0], /^Subject: piped\r\n\r\nline 0\r\n[^]*line 19\r\n$/);

    const broken = new ChunkPipe();
    const aborted = relayPassthrough(backend, envelope(), broken);
    broken.push(encoder.encode("Subject: half\r\n\r\nhalf a message"));
    broken.end(new Error("client went away"));
    await assert.rejects(aborted, /client went away/);
    // The abandoned connection is closed without a final dot: once the sink saw it close,
    // the half message can no longer arrive.
    await until("the sink to see the aborted connection close", () => sink.open === 0);
    assert.equal(sink.messages.length, 1, "the half message was not delivered");
    // The pool replaced the connection it had to abandon.
    const again = await relayPassthrough(
      backend,
      envelope(),
      (async function* () {
        yield encoder.encode("Subject: after\r\n\r\nok\r\n");
      })(),
    );
    assert.equal(again.reply.code, 250);
    assert.equal(sink.messages.length, 2);
  });
});
