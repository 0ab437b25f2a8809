/**
 * Connection pooling towards the backend: reuse with RSET, the NOOP check
 * after idle, replacement of dead connections, the per-connection message
 * limit, idle close, the size limit under load — and 1000 queued messages
 * through `pool_size = 4`.
 */
import { type Envelope, newQueueId } from "../src/mail/mod.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { MemoryAuditLog } from "../src/audit/mod.ts";
import { SmtpBackend, type SmtpBackendOptions } from "../src/delivery/mod.ts";
import { QueueManager, Spool } from "../src/queue/mod.ts";
import { SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();

function envelope(id: string, recipients = ["bob@dest.org"]): Envelope {
  return {
    v: 1,
    id,
    from: "alice@example.com",
    recipients,
    receivedAt: new Date().toISOString(),
    client: { address: "127.0.0.1", helo: "test" },
  };
}

let serial = 0;
function nextId(): string {
  return newQueueId(Date.now() + serial++);
}

function backendFor(sink: SmtpSink, options: Partial<SmtpBackendOptions> = {}): SmtpBackend {
  return new SmtpBackend({
    route: "default",
    host: "127.0.0.1",
    port: sink.port,
    security: "none",
    display: `smtp://127.0.0.1:${sink.port}?tls=none`,
    ehloName: "relay.test",
    poolSize: 4,
    timeouts: { connect: 5000, command: 5000, data: 5000 },
    ...options,
  });
}

async function send(backend: SmtpBackend, subject: string): Promise<string> {
  const env = envelope(nextId());
  const data = encoder.encode(`Subject: ${subject}\r\n\r\nbody\r\n`);
  const [outcome] = await backend.deliver(env, data, env.recipients);
  return outcome.status;
}

/** A clock the test moves by hand, for the pool and its connections. */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let time = Date.UTC(2026, 10, 29, 12, 0, 0);
  return { now: () => time, advance: (ms) => time += ms };
}

Deno.test("pool: one connection reused with RSET; NOOP only after idling", async () => {
  const sink = await SmtpSink.start();
  const clock = manualClock();
  const backend = backendFor(sink, { healthCheckAfterMs: 400, now: clock.now });
  try {
    // However long these take in wall time, no time passes for the pool.
    for (let i = 0; i < 3; i++) assert.equal(await send(backend, `m${i}`), "delivered");
    assert.equal(sink.connections, 1);
    assert.equal(sink.count("RSET"), 2);
    assert.equal(sink.count("NOOP"), 0);
    clock.advance(399);
    assert.equal(await send(backend, "not idle long enough"), "delivered");
    assert.equal(sink.count("NOOP"), 0);
    clock.advance(400);
    assert.equal(await send(backend, "after idle"), "delivered");
    assert.equal(sink.count("NOOP"), 1);
    assert.equal(sink.connections, 1);
    assert.equal(sink.messages.length, 5);
  } finally {
    await backend.close();
    await sink.close();
  }
});

Deno.test("pool: a connection the backend dropped is replaced (NOOP check, or defer and reconnect)", async () => {
  const sink = await SmtpSink.start();
  const checked = backendFor(sink, { healthCheckAfterMs: 0 });
  const unchecked = backendFor(sink, { healthCheckAfterMs: 60_000 });
  try {
    assert.equal(await send(checked, "first"), "delivered");
    assert.equal(await send(unchecked, "first"), "delivered");
    // Backend restart: every open connection is cut.
    await sink.pause();
    await sink.resume();
    assert.equal(await send(checked, "after restart"), "delivered", "NOOP caught the dead one");
    // Without the check the transaction fails on the dead connection and is deferred...
    assert.equal(await send(unchecked, "after restart"), "deferred");
    // ...and the next one reconnects.
    assert.equal(await send(unchecked, "again"), "delivered");
    assert.equal(sink.connections, 4);
  } finally {
    await checked.close();
    await unchecked.close();
    await sink.close();
  }
});

Deno.test("pool: max_messages_per_connection, then QUIT and a new connection", async () => {
  const sink = await SmtpSink.start();
  const backend = backendFor(sink, { maxMessagesPerConnection: 2 });
  try {
    for (let i = 0; i < 5; i++) assert.equal(await send(backend, `m${i}`), "delivered");
    assert.equal(sink.connections, 3);
    await until("two QUITs", () => sink.count("QUIT") === 2);
  } finally {
    await backend.close();
    await sink.close();
  }
  assert.equal(sink.count("QUIT"), 3, "close() says QUIT to the idle one");
});

Deno.test("pool: idle connections are closed after idle_timeout", async () => {
  const sink = await SmtpSink.start();
  const clock = manualClock();
  const backend = backendFor(sink, { idleTimeoutMs: 300, now: clock.now });
  try {
    assert.equal(await send(backend, "one"), "delivered");
    assert.equal(sink.open, 1);
    clock.advance(299);
    const swept = backend.pool.stats.sweeps;
    await until("two idle sweeps", () => backend.pool.stats.sweeps >= swept + 2);
    assert.equal(sink.count("QUIT"), 0, "not before idle_timeout");
    assert.equal(backend.pool.stats.open, 1);
    clock.advance(1);
    await until("the idle connection's QUIT", () => sink.count("QUIT") === 1 && sink.open === 0);
    assert.equal(backend.pool.stats.open, 0);
    assert.equal(await send(backend, "two"), "delivered");
    assert.equal(sink.connections, 2);
  } finally {
    await backend.close();
    await sink.close();
  }
});

Deno.test("pool: 40 concurrent deliveries share at most pool_size connections", async () => {
  const sink = await SmtpSink.start({ finalDelayMs: 2 });
  const backend = backendFor(sink, { poolSize: 3 });
  try {
    const statuses = await Promise.all(
      Array.from({ length: 40 }, (_, i) => send(backend, `c${i}`)),
    );
    assert.ok(statuses.every((s) => s === "delivered"));
    assert.equal(sink.messages.length, 40);
    assert.ok(sink.maxOpen <= 3, `max open ${sink.maxOpen}`);
    assert.equal(sink.connections, 3);
  } finally {
    await backend.close();
    await sink.close();
  }
});

Deno.test("pool: 1000 queued messages through pool_size = 4 open at most 4 connections", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_pool_1000_" });
  const sink = await SmtpSink.start();
  const backend = backendFor(sink, { poolSize: 4, maxMessagesPerConnection: 10_000 });
  const audit = new MemoryAuditLog(5000);
  const spool = await Spool.open(join(dir, "spool"));
  const queue = new QueueManager({ spool, backend, audit, concurrency: 16, scanIntervalMs: 0 });
  try {
    const ids: string[] = [];
    // Commit in batches so directory syncs are shared.
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const id = nextId();
        ids.push(id);
        const writer = spool.begin(envelope(id, [`r${batch * 100 + i}@dest.org`]));
        writer.write(encoder.encode(`Subject: ${id}\r\n\r\nmessage ${id}\r\n`));
        await writer.commit();
      }));
    }
    assert.equal(await queue.start(), 1000);
    await sink.waitForMessages(1000, 30_000);
    const subjects = new Set(sink.texts().map((t) => /^Subject: (\S+)/.exec(t)![1]));
    assert.equal(subjects.size, 1000);
    for (const id of ids) assert.ok(subjects.has(id));
    assert.ok(sink.maxOpen <= 4, `max open ${sink.maxOpen}`);
    assert.ok(sink.connections <= 4, `connections ${sink.connections}`);
    assert.equal(sink.count("MAIL"), 1000);
    assert.equal(sink.count("RSET"), 1000 - sink.connections, "RSET before every reuse");
    // Everything delivered: the queue folder is empty again.
    await until("an empty queue folder", async () => (await spool.list()).length === 0);
    assert.equal(audit.events.filter((e) => e.event === "message_relayed").length, 1000);
  } finally {
    await queue.stop();
    await backend.close();
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});
