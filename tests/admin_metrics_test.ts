/**
 * The admin listener against a real relay: `/metrics` counters that move
 * after a real send, a failed AUTH and a broken TLS handshake; the bearer
 * token; `/healthz/ready` turning 503 when a required audit trail cannot be
 * written. The example Grafana dashboard queries only series that exist.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connectAs, connectClient, startTestRelay, USERS } from "./support/relay.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();

/** The value of one sample in Prometheus text, or `null` when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = match[2] ? match[2].split(/,(?=[a-z_]+=")/) : [];
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) {
      return Number(match[3]);
    }
  }
  return null;
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${url}/metrics`, { headers });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return await response.text();
}

Deno.test("/metrics counts a real send, a failed AUTH and a failed TLS handshake; health is up", async () => {
  const t = await startTestRelay();
  try {
    const admin = t.relay.admin!;
    assert.ok(admin, "the admin listener runs by default");
    const live = await fetch(`${admin.url}/healthz/live`);
    assert.equal(live.status, 200);
    assert.equal(await live.text(), "live\n");
    const ready = await fetch(`${admin.url}/healthz/ready`);
    assert.equal(ready.status, 200);
    assert.equal(
      await ready.text(),
      "ready\nspool: ok\naudit: ok\nlisteners: ok\n",
    );

    const before = await scrape(admin.url);
    assert.equal(sample(before, "relay_messages_accepted_total"), 0);
    assert.equal(sample(before, "relay_smtp_connections_total", { listener: "smtps" }), 0);
    assert.ok(sample(before, "relay_process_cpu_seconds_total")! > 0, "process metrics");

    const client = await connectAs(t);
    const sent = await client.send({
      from: USERS[0].email,
      to: ["bob@example.net"],
      data: encoder.encode("Subject: metrics\r\n\r\nhello\r\n"),
    });
    assert.equal(sent.final?.code, 250);
    const during = await scrape(admin.url);
    assert.equal(sample(during, "relay_smtp_sessions_active"), 1);
    await client.quit();

    const wrong = await connectClient(t);
    await assert.rejects(wrong.auth({ username: USERS[0].email, password: "wrong-password" }));
    await wrong.quit().catch(() => {});

    // A client that speaks no TLS on the implicit-TLS port.
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: t.smtpsPort });
    await raw.write(encoder.encode("EHLO plain.example\r\n"));
    const buffer = new Uint8Array(1024);
    while ((await raw.read(buffer).catch(() => null)) !== null) { /* until the relay closes */ }
    raw.close();

    await t.waitForOutbox(1);
    let text = "";
    // The delivery is counted before its job ends and a session after its socket closes:
    // wait until the relay is idle again.
    await until("the delivery and the handshake failure in /metrics, then idle", async () => {
      text = await scrape(admin.url);
      return sample(text, "relay_delivery_attempts_total", { outcome: "delivered" }) === 1 &&
        sample(text, "relay_tls_handshake_failures_total", { listener: "smtps" }) === 1 &&
        sample(text, "relay_queue_messages", { state: "active" }) === 0 &&
        sample(text, "relay_smtp_sessions_active") === 0 &&
        // The delivered message's removal: no new message came to share an fsync with it.
        sample(text, "relay_spool_commits_total", { sync: "no" }) === 1;
    });
    assert.ok(sample(text, "relay_spool_commits_total", { sync: "yes" })! >= 1, "the message");
    assert.equal(sample(text, "relay_messages_accepted_total"), 1);
    assert.equal(sample(text, "relay_smtp_connections_total", { listener: "smtps" }), 3);
    assert.equal(
      sample(text, "relay_auth_attempts_total", { mechanism: "PLAIN", outcome: "success" }),
      1,
    );
    assert.equal(
      sample(text, "relay_auth_attempts_total", {
        mechanism: "PLAIN",
        outcome: "invalid_credentials",
      }),
      1,
    );
    assert.equal(sample(text, "relay_delivery_duration_seconds_count"), 1);
    assert.equal(sample(text, "relay_queue_messages", { state: "active" }), 0);
    assert.equal(sample(text, "relay_audit_write_failures_total"), 0);
    assert.equal(sample(text, "relay_smtp_sessions_active"), 0);

    // Every series the example Grafana dashboard queries exists.
    const dashboard = await Deno.readTextFile(
      new URL("../examples/grafana/relay-dashboard.json", import.meta.url),
    );
    const queried = new Set(dashboard.match(/\brelay_[a-z_]+/g));
    assert.ok(queried.size >= 12);
    const exported = new Set(text.split("\n").map((line) => /^relay_[a-z_]+/.exec(line)?.[0]));
    for (const name of queried) assert.ok(exported.has(name), `${name} in /metrics`);

    const unknown = await fetch(`${admin.url}/nope`);
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  } finally {
    await t.close();
  }
});

Deno.test("admin.token_file: /metrics needs the bearer token, the health endpoints do not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay-admin-token-" });
  const tokenFile = join(dir, "admin.token");
  const token = "s3cret-admin-token-0123456789";
  await Deno.writeTextFile(tokenFile, `${token}\n`);
  const t = await startTestRelay({ config: { admin: { token_file: tokenFile } } });
  try {
    const url = t.relay.admin!.url;
    const attempts: Record<string, string>[] = [{}, {
      authorization: "Bearer wrong-token-0123456789",
    }];
    for (const headers of attempts) {
      const refused = await fetch(`${url}/metrics`, { headers });
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="relay-admin"');
      await refused.body?.cancel();
    }
    const text = await scrape(url, { authorization: `Bearer ${token}` });
    assert.ok(sample(text, "relay_messages_accepted_total") !== null);
    const ready = await fetch(`${url}/healthz/ready`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
  } finally {
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a token file that is too short stops the start with the key named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay-admin-token-" });
  const tokenFile = join(dir, "admin.token");
  await Deno.writeTextFile(tokenFile, "short\n");
  try {
    await assert.rejects(
      startTestRelay({ config: { admin: { token_file: tokenFile } } }),
      /admin\.token_file: .* at least 16 characters/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("/healthz/ready is 503 naming the audit trail while a required trail cannot be written", async () => {
  const t = await startTestRelay({
    config: { audit: { required: true } },
    start: { audit: undefined }, // the real file audit log from the config
  });
  try {
    const url = t.relay.admin!.url;
    const path = t.config.audit.file;
    // The audit file now leads to a device that answers every write with ENOSPC.
    await Deno.remove(path);
    await Deno.symlink("/dev/full", path);
    const client = await connectClient(t);
    await assert.rejects(client.auth({ username: USERS[0].email, password: "wrong-password" }));
    await client.quit().catch(() => {});
    let body = "";
    await until("ready to turn 503", async () => {
      const response = await fetch(`${url}/healthz/ready`);
      body = await response.text();
      return response.status === 503;
    });
    assert.match(body, /^not ready: audit trail .*audit\.jsonl cannot be written/);
    assert.match(body, /\nspool: ok\n/);
    const text = await scrape(url);
    assert.ok(sample(text, "relay_audit_write_failures_total")! >= 1);

    // Writable again: ready comes back without a restart.
    await Deno.remove(path);
    await until("ready to turn 200 again", async () => {
      const response = await fetch(`${url}/healthz/ready`);
      await response.body?.cancel();
      return response.status === 200;
    });
  } finally {
    await t.close();
  }
});
