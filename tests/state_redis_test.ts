import assert from "node:assert/strict";
import {
  FailModeStateStore,
  RedisStateStore,
  SlidingWindow,
  StateUnavailableError,
} from "../src/state/mod.ts";
import { RedisConnection } from "../src/state/redis_client.ts";
import { readStateFiles, stateSchema } from "../src/config/state_schema.ts";
import { startRedis } from "./support/redis.ts";
import { generateDevCertificates } from "../src/tls/dev_ca.ts";
import { until } from "./support/until.ts";

Deno.test("RedisStateStore: counters, releases, values and expiry on a real redis-server", async () => {
  const redis = await startRedis();
  const a = RedisConnection.open({ url: redis.url, prefix: "a:", commandTimeoutMs: 2000 });
  const b = RedisConnection.open({ url: redis.url, prefix: "b:", commandTimeoutMs: 2000 });
  try {
    await until("redis connected", () => a.ready && b.ready);
    const store = new RedisStateStore(a);
    assert.equal(await store.increment("n", 60_000), 1);
    assert.equal(await store.increment("n", 60_000, 4), 5);
    assert.equal(await store.increment("n", 60_000, -3), 2, "a negative amount releases");
    const ttl = await store.ttl("n");
    assert.ok(ttl !== null && ttl > 59_000 && ttl <= 60_000, `ttl ${ttl}`);
    assert.equal(await new RedisStateStore(b).get("n"), null, "prefixes keep relays apart");
    await store.set("v", "hello", 50);
    assert.equal(await store.get("v"), "hello");
    await until("the value expired", async () => await store.get("v") === null);
    assert.equal(await store.ttl("v"), null);
    await store.set("s", "text", 60_000);
    await assert.rejects(store.increment("s", 60_000), TypeError);
    await store.delete("s");
    await store.delete("missing");
    assert.equal(await store.get("s"), null);
    // Sliding windows count atomically on the Redis clock.
    const window = new SlidingWindow(store, 60_000);
    const hits = await Promise.all(Array.from({ length: 20 }, () => window.hit("w")));
    assert.deepEqual(
      hits.map((h) => h.current).sort((x, y) => x - y),
      [...Array(20).keys()].map((i) => i + 1),
    );
    const peek = await window.peek("w");
    assert.equal(peek.current, 20);
    // A reservation given back leaves the window it went into (on the Redis clock).
    await window.giveBack("w", hits[0].now);
    assert.equal((await window.peek("w")).current, 19);
    await window.giveBack("w", hits[0].now - 10 * 60_000); // a window long gone: nothing
    assert.equal((await window.peek("w")).current, 19);
    assert.ok(Math.abs(peek.now - Date.now()) < 5_000, "Redis TIME is the clock");
    await assert.rejects(store.get("w"), TypeError, "a window is not a plain value");
    await window.reset("w");
    assert.equal((await window.peek("w")).current, 0);
    // Leased slots (concurrent connections per address across nodes).
    assert.equal(await store.acquireSlot("slots", "n1:1", 2, 150), true);
    assert.equal(await store.acquireSlot("slots", "n2:1", 2, 60_000), true);
    assert.equal(await store.acquireSlot("slots", "n2:2", 2, 60_000), false);
    await store.releaseSlot("slots", "n2:1");
    assert.equal(await store.acquireSlot("slots", "n2:2", 2, 60_000), true);
    // n1 crashed and never renewed: its lease runs out on the Redis clock.
    await until("n1's lease ran out", () => store.acquireSlot("slots", "n2:3", 2, 60_000));
    await store.renewSlot("slots", "n2:2", 120_000);
    const slotsTtl = await a.run((client) => client.pTTL("a:slots"));
    assert.ok(slotsTtl > 60_000, `renewing extends the set's expiry (${slotsTtl})`);
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

Deno.test("FailModeStateStore: closed refuses while Redis is down, open counts locally; both recover", async () => {
  const redis = await startRedis();
  const connection = RedisConnection.open({
    url: redis.url,
    prefix: "relay:",
    commandTimeoutMs: 1000,
  });
  const changes: string[] = [];
  const closed = new FailModeStateStore({
    shared: new RedisStateStore(connection),
    fail: "closed",
    onChange: (up) => changes.push(`closed:${up ? "up" : "down"}`),
  });
  const open = new FailModeStateStore({
    shared: new RedisStateStore(connection),
    fail: "open",
    onChange: (up) => changes.push(`open:${up ? "up" : "down"}`),
  });
  try {
    await until("redis connected", () => connection.ready);
    assert.equal(await closed.increment("k", 60_000), 1);
    await redis.stop();
    await until("the connection noticed", () => !connection.ready);
    await assert.rejects(closed.increment("k", 60_000), StateUnavailableError);
    assert.equal(await open.increment("k", 60_000), 1, "open: a local counter meanwhile");
    assert.equal(await open.increment("k", 60_000), 2);
    assert.deepEqual(changes, ["closed:down", "open:down"]);
    await redis.start();
    await until("reconnected", () => connection.ready);
    assert.equal(
      await closed.increment("k", 60_000),
      1,
      "Redis came back empty: counting restarts",
    );
    assert.equal(await open.increment("k", 60_000), 2, "open: back on the shared counter");
    assert.deepEqual(changes, ["closed:down", "open:down", "closed:up", "open:up"]);
  } finally {
    await open.close();
    await closed.close();
    await connection.close();
    await redis.close();
  }
});

Deno.test("a Redis that hangs (SIGSTOP) fails within timeout_ms, then answers again", async () => {
  const redis = await startRedis();
  const connection = RedisConnection.open({
    url: redis.url,
    prefix: "relay:",
    commandTimeoutMs: 200,
  });
  const store = new FailModeStateStore({ shared: new RedisStateStore(connection), fail: "closed" });
  try {
    await until("redis connected", () => connection.ready);
    assert.equal(await store.increment("k", 60_000), 1);
    redis.pause();
    const started = Date.now();
    await assert.rejects(store.increment("k", 60_000), StateUnavailableError);
    const waited = Date.now() - started;
    assert.ok(waited >= 150 && waited < 5_000, `gave up after ${waited} ms`);
    redis.resume();
    await until("answers again", async () => {
      return await store.increment("k", 60_000).then(() => true, () => false);
    });
    assert.ok(await store.get("k") !== null);
    // Closing does not wait for a Redis that hangs.
    redis.pause();
    await assert.rejects(store.increment("k", 60_000), StateUnavailableError);
    await connection.close();
  } finally {
    redis.resume();
    await store.close();
    await connection.close();
    await redis.close();
  }
});

Deno.test("rediss:// with [state] ca: TLS to Redis, the server verified against the given CA", async () => {
  const dir = await Deno.makeTempDir();
  const certs = await generateDevCertificates({ dir });
  const redis = await startRedis({ tls: { cert: certs.cert, key: certs.key } });
  const files = await readStateFiles(stateSchema.parse({ ca: certs.caCert }));
  const trusted = RedisConnection.open({
    url: redis.url,
    prefix: "relay:",
    commandTimeoutMs: 1000,
    ...files,
  });
  const untrusted = RedisConnection.open({
    url: redis.url,
    prefix: "relay:",
    commandTimeoutMs: 1000,
  });
  try {
    assert.match(redis.url, /^rediss:/);
    await until("connected over TLS", () => trusted.ready);
    assert.equal(await new RedisStateStore(trusted).increment("tls", 1000), 1);
    await assert.rejects(new RedisStateStore(untrusted).get("tls"), StateUnavailableError);
  } finally {
    await trusted.close();
    await untrusted.close();
    await redis.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[state] password_file: the password is read from its file; a wrong or missing one is named", async () => {
  const redis = await startRedis({ password: "s3cret-redis" });
  const dir = await Deno.makeTempDir();
  const good = RedisConnection.open({
    url: redis.url,
    prefix: "relay:",
    commandTimeoutMs: 1000,
    ...await readStateFiles(
      stateSchema.parse({
        backend: "redis",
        password_file: await write(dir, "ok", "s3cret-redis\n"),
      }),
    ),
  });
  const none = RedisConnection.open({ url: redis.url, prefix: "relay:", commandTimeoutMs: 1000 });
  try {
    await until("connected with the password", () => good.ready);
    assert.equal(await new RedisStateStore(good).increment("k", 1000), 1);
    await assert.rejects(new RedisStateStore(none).increment("k", 1000), StateUnavailableError);
    await assert.rejects(
      readStateFiles(stateSchema.parse({ password_file: `${dir}/missing` })),
      /^Error: state\.password_file: cannot read .*missing: file not found$/,
    );
    await assert.rejects(
      readStateFiles(stateSchema.parse({ password_file: await write(dir, "empty", "\n") })),
      /state\.password_file: .* is empty/,
    );
  } finally {
    await good.close();
    await none.close();
    await redis.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function write(dir: string, name: string, text: string): Promise<string> {
  await Deno.writeTextFile(`${dir}/${name}`, text);
  return `${dir}/${name}`;
}
