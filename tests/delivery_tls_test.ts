/**
 * TLS towards the backend, configured through `[relay]`: STARTTLS with AUTH,
 * implicit TLS, and a certificate that does not fit. `verify = false` skips
 * only the host name check: Deno verifies the chain on every connection and
 * has no per-connection switch for that, so a backend with a private CA
 * needs `ca` whatever `verify` says — the last case pins that down.
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { makeTestCertificates, type TestCertificates } from "../src/delivery/_smtp_test_server.ts";
import { readState } from "../src/queue/mod.ts";
import { connectAs, startTestRelay, type TestRelay } from "./support/relay.ts";
import { type SinkOptions, SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const PASSWORD = "backend-pw-Zq81";

async function submit(t: TestRelay, subject: string): Promise<string> {
  const client = await connectAs(t);
  try {
    const result = await client.send({
      from: "alice@example.com",
      to: ["bob@dest.org"],
      data: encoder.encode(`Subject: ${subject}\r\n\r\nbody\r\n`),
    });
    return /queued as (\S+)/.exec(result.final!.lines[0])![1];
  } finally {
    await client.quit();
  }
}

interface Case {
  sink: SinkOptions;
  relay: Record<string, unknown>;
}

/** Runs a relay towards a TLS sink; collects the relay's log records. */
async function withTlsBackend(
  make: (certs: TestCertificates, port: () => number) => Case,
  fn: (t: TestRelay, sink: SmtpSink, logs: LogRecord[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_tls_backend_" });
  const logs: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => logs.push(record) },
    loggers: [
      { category: ["relay"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["memory"] },
    ],
  });
  let sink: SmtpSink | undefined;
  let t: TestRelay | undefined;
  try {
    const certs = await makeTestCertificates(dir);
    let port = 0;
    const c = make(certs, () => port);
    sink = await SmtpSink.start(c.sink);
    port = sink.port;
    const relay = make(certs, () => port).relay;
    t = await startTestRelay({
      config: { relay: { retry_schedule: [0.2], scan_interval: 0.1, ...relay } },
    });
    await fn(t, sink, logs);
    const rendered = logs.map((r) => JSON.stringify(r.properties) + r.message.join("")).join("\n");
    assert.ok(!rendered.includes(PASSWORD), "the backend password never reaches a log");
  } finally {
    await t?.close();
    await sink?.close();
    await reset();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("relay TLS: STARTTLS and AUTH required by the backend", async () => {
  await withTlsBackend(
    (certs, port) => ({
      sink: {
        tls: { cert: certs.cert, key: certs.key },
        requireTls: true,
        auth: { username: "relay@dest.org", password: PASSWORD },
      },
      relay: {
        url: `smtp://localhost:${port()}?tls=starttls`,
        ca: certs.caCertPath,
        username: "relay@dest.org",
        password: PASSWORD,
      },
    }),
    async (t, sink) => {
      await submit(t, "starttls+auth");
      await sink.waitForMessages(1);
      assert.equal(sink.messages[0].tls, true);
      assert.equal(sink.messages[0].user, "relay@dest.org");
    },
  );
});

Deno.test("relay TLS: implicit TLS (smtps://)", async () => {
  await withTlsBackend(
    (certs, port) => ({
      sink: { tls: { cert: certs.cert, key: certs.key }, implicitTls: true },
      relay: { url: `smtps://127.0.0.1:${port()}`, ca: certs.caCertPath },
    }),
    async (t, sink) => {
      await submit(t, "smtps");
      await sink.waitForMessages(1);
      assert.equal(sink.messages[0].tls, true);
    },
  );
});

Deno.test("relay TLS: a certificate for another name is refused with verify on", async () => {
  await withTlsBackend(
    (certs, port) => ({
      sink: { tls: { cert: certs.cert, key: certs.key } },
      relay: {
        url: `smtp://127.0.0.1:${port()}?tls=starttls`,
        servername: "mail.example.net",
        ca: certs.caCertPath,
      },
    }),
    async (t, sink, logs) => {
      const id = await submit(t, "wrong name");
      await until("a deferral", async () => (await readState(t.relay.spool, id)) !== null);
      assert.equal(sink.messages.length, 0);
      assert.equal(sink.count("MAIL"), 0, "nothing sent after the failed handshake");
      const state = await readState(t.relay.spool, id);
      assert.match(
        state!.lastError!,
        /TLS with mail\.example\.net failed: .*certificate not valid for name "mail\.example\.net"/,
      );
      const line = logs.find((r) =>
        r.category.join(".") === "relay.delivery" && r.level === "warning" &&
        r.properties.id === id
      );
      assert.ok(line, "a warning naming the queue id");
      assert.match(String(line.properties.reason), /certificate not valid for name/);
    },
  );
});

Deno.test("relay TLS: the same certificate is accepted with verify = false", async () => {
  await withTlsBackend(
    (certs, port) => ({
      sink: { tls: { cert: certs.cert, key: certs.key } },
      relay: {
        url: `smtp://127.0.0.1:${port()}?tls=starttls`,
        servername: "mail.example.net",
        ca: certs.caCertPath,
        verify: false,
      },
    }),
    async (t, sink) => {
      await submit(t, "verify off");
      await sink.waitForMessages(1);
      assert.equal(sink.messages[0].tls, true);
    },
  );
});

Deno.test("relay TLS: an unknown CA is refused even with verify = false (set ca instead)", async () => {
  await withTlsBackend(
    (certs, port) => ({
      sink: { tls: { cert: certs.cert, key: certs.key } },
      relay: { url: `smtp://127.0.0.1:${port()}?tls=starttls`, verify: false },
    }),
    async (t, sink) => {
      const id = await submit(t, "unknown CA");
      await until("a deferral", async () => (await readState(t.relay.spool, id)) !== null);
      assert.equal(sink.messages.length, 0);
      assert.match((await readState(t.relay.spool, id))!.lastError!, /UnknownIssuer/);
    },
  );
});
