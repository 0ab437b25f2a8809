/**
 * Several relay nodes sharing one real redis-server (`[state] backend =
 * "redis"`): failed-login lockouts, sending quotas and the OAuth server's
 * state (codes, refresh-token families, revocations, signing keys) are the
 * same on every node, and a Redis outage follows `[state] fail`.
 */
import assert from "node:assert/strict";
import type { SmtpClient } from "../src/delivery/smtp_client.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { connectClient, startTestRelay, type TestRelay, USERS } from "./support/relay.ts";
import type { StartRelayOptions } from "../src/relay.ts";
import { signInOverHttp } from "./support/oauth_flow.ts";
import { until, untilWindowRoom } from "./support/until.ts";
import { startHaproxy } from "./support/haproxy.ts";
import { RawClient } from "./support/raw_client.ts";
import { startRelayProcess } from "./support/relay_process.ts";
import { freePort } from "./support/ports.ts";
import { SmtpClient as Client } from "../src/delivery/smtp_client.ts";
import { join } from "node:path";
import { runQueueCommand } from "../src/cli/queue.ts";
import { runOAuthCommand } from "../src/cli/oauth.ts";

const encoder = new TextEncoder();
const ALICE = USERS[0];

/** One relay node on the shared Redis; `config` sections are merged over the node defaults. */
async function startNode(
  redis: TestRedis,
  config: Record<string, Record<string, unknown>> = {},
  start: StartRelayOptions = {},
): Promise<TestRelay> {
  return await startTestRelay({
    config: { ...config, state: { backend: "redis", url: redis.url, ...config.state } },
    start,
  });
}

/** AUTH PLAIN with the raw reply (no exception on 4xx/5xx). */
async function plain(c: SmtpClient, user: string, password: string) {
  return await c.authRaw("PLAIN", encoder.encode(`\0${user}\0${password}`).toBase64());
}

/** One AUTH PLAIN attempt on a new connection; the first reply's code. */
async function attempt(node: TestRelay, password: string): Promise<number> {
  const c = await connectClient(node);
  try {
    return (await plain(c, ALICE.email, password)).code;
  } finally {
    c.close();
  }
}

/** AUTH XOAUTH2 with `token`; the final reply (after the RFC 7628 error challenge, if any). */
async function xoauth2(node: TestRelay, token: string): Promise<{ code: number; text: string }> {
  const c = await connectClient(node);
  try {
    const initial = encoder.encode(`user=${ALICE.email}\x01auth=Bearer ${token}\x01\x01`);
    let reply = await c.authRaw("XOAUTH2", initial.toBase64());
    if (reply.code === 334) {
      await c.sendLine("");
      reply = await c.readReply();
    }
    return { code: reply.code, text: reply.lines.join(" ") };
  } finally {
    c.close();
  }
}

async function send(c: SmtpClient, subject: string) {
  return await c.send({
    from: ALICE.email,
    to: ["r@example.net"],
    data: encoder.encode(`Subject: ${subject}\r\n\r\nbody\r\n`),
  });
}

Deno.test("two nodes: 3 bad passwords on A and 3 on B, then either node refuses", async () => {
  const redis = await startRedis();
  const limits = { rate_limit: { enabled: true, per_minute: 6, per_hour: 100, block_seconds: 60 } };
  const a = await startNode(redis, limits);
  const b = await startNode(redis, limits);
  try {
    for (let i = 0; i < 3; i++) assert.equal(await attempt(a, `guess-a${i}`), 535);
    for (let i = 0; i < 2; i++) assert.equal(await attempt(b, `guess-b${i}`), 535);
    // The sixth failure (on B) blocks the user and the address on both nodes.
    const c = await connectClient(b);
    await c.sendLine("AUTH PLAIN " + encoder.encode(`\0${ALICE.email}\0guess-b2`).toBase64());
    assert.equal((await c.readReply()).code, 535);
    const blocked = await c.readReply();
    assert.equal(blocked.code, 421);
    assert.equal(blocked.enhanced, "4.7.0");
    c.close();
    // Even the right password is refused on either node, before any verification.
    assert.equal(await attempt(a, ALICE.password), 421);
    assert.equal(await attempt(b, ALICE.password), 421);
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

Deno.test("two nodes: a quota of 5 messages/hour, 3 through A, then B accepts 2 and refuses the 3rd", async () => {
  const redis = await startRedis();
  const quota = { quota: { user_messages_per_hour: 5 } };
  const a = await startNode(redis, quota);
  const b = await startNode(redis, quota);
  try {
    const ca = await connectClient(a);
    assert.equal((await ca.auth({ username: ALICE.email, password: ALICE.password })).code, 235);
    for (let i = 0; i < 3; i++) assert.equal((await send(ca, `a${i}`)).final?.code, 250);
    await ca.quit();
    const cb = await connectClient(b);
    assert.equal((await cb.auth({ username: ALICE.email, password: ALICE.password })).code, 235);
    for (let i = 0; i < 2; i++) assert.equal((await send(cb, `b${i}`)).final?.code, 250);
    await cb.sendLine(`MAIL FROM:<${ALICE.email}>`);
    const refused = await cb.readReply();
    assert.equal(refused.code, 451);
    assert.match(
      refused.lines[0],
      /^4\.7\.1 Sending quota exceeded for alice@example\.com \(5 messages per hour\)/,
    );
    await cb.quit();
    await a.waitForOutbox(3);
    await b.waitForOutbox(2);
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

/** Two nodes with the embedded OAuth server, one issuer name (as behind one load balancer). */
// The issuer must not follow a port-0 listener's port: fixed free ports.
async function startOAuthNodes(
  redis: TestRedis,
  config: Record<string, Record<string, unknown>> = {},
  oauthConfig: Record<string, unknown> = {},
): Promise<[TestRelay, TestRelay]> {
  const oauth = (port: number) => ({
    ...config,
    oauth: {
      enabled: true,
      listen: `127.0.0.1:${port}`,
      issuer: "https://auth.relay.test",
      ...oauthConfig,
    },
  });
  const a = await startNode(redis, oauth(freePort()), { oauthKeysReloadIntervalMs: 50 });
  const b = await startNode(redis, oauth(freePort()), { oauthKeysReloadIntervalMs: 50 }).catch(
    async (error) => {
      await a.close();
      throw error;
    },
  );
  return [a, b];
}

async function token(node: TestRelay, form: Record<string, string>): Promise<Response> {
  return await fetch(`${node.relay.oauth!.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: "thunderbird-email-client", ...form }),
  });
}

/** Alice signs in on `node`'s login page (no browser) and gets tokens. */
async function signIn(node: TestRelay): Promise<{ access_token: string; refresh_token: string }> {
  return await signInOverHttp({
    issuer: node.relay.oauth!.url,
    redirectUri: "http://127.0.0.1/callback",
    email: ALICE.email,
    password: ALICE.password,
  });
}

async function refresh(node: TestRelay, refreshToken: string): Promise<Response> {
  return await token(node, { grant_type: "refresh_token", refresh_token: refreshToken });
}

async function jwks(node: TestRelay): Promise<string[]> {
  const response = await fetch(`${node.relay.oauth!.url}/oauth2/jwks`);
  return ((await response.json()).keys as { kid: string }[]).map((k) => k.kid).sort();
}

Deno.test("two nodes: a token from A works on B, refresh on B, revoke on B is 535 on A, reuse caught across nodes", async () => {
  const redis = await startRedis();
  const [a, b] = await startOAuthNodes(redis);
  try {
    // Both nodes publish the same keys (the set lives in Redis).
    assert.deepEqual(await jwks(a), await jwks(b));
    // The login page from A, its form (CSRF token, pending request) posted to B, the code
    // (PKCE) redeemed on A: a balancer may send each request to another node.
    const first = await signInOverHttp({
      issuer: a.relay.oauth!.url,
      loginAt: b.relay.oauth!.url,
      tokenAt: a.relay.oauth!.url,
      redirectUri: "http://127.0.0.1/callback",
      email: ALICE.email,
      password: ALICE.password,
    });
    assert.equal((await xoauth2(b, first.access_token)).code, 235, "A's token on B");

    // Refresh on B (A issued the refresh token).
    const refreshed = await refresh(b, first.refresh_token);
    assert.equal(refreshed.status, 200);
    const second = await refreshed.json() as { access_token: string; refresh_token: string };
    assert.equal((await xoauth2(a, second.access_token)).code, 235, "B's token on A");

    // Revoke the new access token on B: A refuses it.
    const revoked = await fetch(`${b.relay.oauth!.url}/oauth2/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        client_id: "thunderbird-email-client",
        token: second.access_token,
      }),
    });
    assert.equal(revoked.status, 200);
    await revoked.body?.cancel();
    assert.equal((await xoauth2(a, second.access_token)).code, 535, "revoked on B, refused on A");
    assert.equal((await xoauth2(a, first.access_token)).code, 235, "only that token was revoked");

    // The first refresh token was rotated on B; presenting it again on A is reuse:
    // the family is revoked everywhere.
    const reused = await refresh(a, first.refresh_token);
    assert.equal(reused.status, 400);
    assert.equal((await reused.json()).error, "invalid_grant");
    assert.equal((await xoauth2(b, first.access_token)).code, 535, "the family is revoked on B");
    const after = await refresh(b, second.refresh_token);
    assert.equal(after.status, 400, "the rotated token's successor is dead too");
    await after.body?.cancel();
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

Deno.test("two nodes: a key rotation (relay oauth keys rotate) is published by both; B verifies A's new tokens", async () => {
  const redis = await startRedis();
  const [a, b] = await startOAuthNodes(redis);
  try {
    const before = await jwks(b);
    assert.equal(before.length, 1);
    // The operator rotates with the CLI, configured like node A: the set in Redis changes.
    const printed: string[] = [];
    const code = await runOAuthCommand(["keys", "rotate"], a.config, {
      stdout: (text) => printed.push(text),
      stderr: () => {},
    });
    assert.equal(code, 0);
    const kid = printed[0];
    for (const node of [a, b]) {
      await until("the node's JWKS lists the new key", async () => {
        return JSON.stringify(await jwks(node)) === JSON.stringify([...before, kid].sort());
      });
    }
    const tokens = await signIn(a);
    const header = JSON.parse(atob(tokens.access_token.split(".")[0]));
    assert.equal(header.kid, kid, "signed with the new key");
    assert.equal((await xoauth2(b, tokens.access_token)).code, 235);
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

Deno.test("two nodes: a client registered on A (RFC 7591) signs in on B", async () => {
  const redis = await startRedis();
  const [a, b] = await startOAuthNodes(redis, {}, { dynamic_registration: true });
  try {
    const registered = await fetch(`${a.relay.oauth!.url}/oauth2/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_name: "Mail app",
        redirect_uris: ["http://127.0.0.1/callback"],
        token_endpoint_auth_method: "none",
      }),
    });
    assert.equal(registered.status, 201);
    const { client_id } = await registered.json() as { client_id: string };
    const tokens = await signInOverHttp({
      issuer: b.relay.oauth!.url,
      clientId: client_id,
      redirectUri: "http://127.0.0.1/callback",
      email: ALICE.email,
      password: ALICE.password,
    });
    assert.equal((await xoauth2(a, tokens.access_token)).code, 235);
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

Deno.test("Redis stopped mid-run, fail = closed: AUTH 454 4.7.0, OAuth 503, then recovery without restart", async () => {
  const redis = await startRedis();
  // Login limits need the shared state; without them password AUTH would not touch Redis.
  const [a, b] = await startOAuthNodes(redis, { rate_limit: { enabled: true } });
  try {
    const tokens = await signIn(a);
    assert.equal(await attempt(a, ALICE.password), 235);
    await redis.stop();
    const c = await connectClient(a);
    const refused = await plain(c, ALICE.email, ALICE.password);
    assert.equal(refused.code, 454);
    assert.equal(refused.enhanced, "4.7.0");
    c.close();
    assert.equal((await xoauth2(b, tokens.access_token)).code, 454, "revocation cannot be checked");
    const unavailable = await refresh(b, tokens.refresh_token);
    assert.equal(unavailable.status, 503);
    assert.equal((await unavailable.json()).error, "temporarily_unavailable");
    assert.ok(a.audit.events.some((e) => e.event === "state_unavailable" && e.fail === "closed"));

    // Redis comes back, empty: the nodes recover by themselves; only the state is gone.
    await redis.start();
    await until("AUTH works again on A", async () => await attempt(a, ALICE.password) === 235);
    assert.equal(await attempt(b, ALICE.password), 235);
    assert.ok(a.audit.events.some((e) => e.event === "state_available"));
    const again = await signIn(b);
    assert.equal((await xoauth2(a, again.access_token)).code, 235, "new tokens work on both");
    assert.equal((await xoauth2(a, tokens.access_token)).code, 235, "old tokens still verify");
    await until("the key set is back in Redis, the same on both nodes", async () => {
      return JSON.stringify(await jwks(a)) === JSON.stringify(await jwks(b));
    });
  } finally {
    await a.close();
    await b.close();
    await redis.close();
  }
});

Deno.test("Redis stopped mid-run, fail = open: mail keeps flowing under per-node limits, audited", async () => {
  const redis = await startRedis();
  const a = await startNode(redis, {
    state: { fail: "open" },
    rate_limit: { enabled: true, per_minute: 2, per_hour: 100, block_seconds: 60 },
  });
  try {
    assert.equal(await attempt(a, ALICE.password), 235);
    await redis.stop();
    const c = await connectClient(a);
    assert.equal((await c.auth({ username: ALICE.email, password: ALICE.password })).code, 235);
    assert.equal((await send(c, "during the outage")).final?.code, 250);
    await c.quit();
    assert.ok(a.audit.events.some((e) => e.event === "state_unavailable" && e.fail === "open"));
    // Limits still hold, counted on this node alone (two failures in one minute window).
    await untilWindowRoom(60_000, 20_000);
    assert.equal(await attempt(a, "guess-1"), 535);
    const g = await connectClient(a);
    await g.sendLine("AUTH PLAIN " + encoder.encode(`\0${ALICE.email}\0guess-2`).toBase64());
    assert.equal((await g.readReply()).code, 535);
    assert.equal((await g.readReply()).code, 421);
    g.close();
    await redis.start();
    // Back on the shared (now empty) counters: the local block is forgotten.
    await until(
      "AUTH on the shared state again",
      async () => await attempt(a, ALICE.password) === 235,
    );
    await until(
      "recovery audited",
      () => a.audit.events.some((e) => e.event === "state_available"),
    );
    await a.waitForOutbox(1);
  } finally {
    await a.close();
    await redis.close();
  }
});

Deno.test("behind HAProxy (round robin, PROXY v2): per-address limits count the real client address on all nodes", async () => {
  const redis = await startRedis();
  // HAProxy connects from 127.0.0.2; the client is 127.0.0.1.
  const behindProxy = (name: string) => ({
    server: { hostname: name },
    smtps: { proxy_protocol: true, trusted_proxies: ["127.0.0.2/32"] },
    limits: { max_connections_per_ip: 2 },
    rate_limit: {
      enabled: true,
      per_minute: 3,
      per_hour: 100,
      block_seconds: 60,
      accounts_per_address_per_hour: 3,
    },
  });
  const a = await startNode(redis, behindProxy("node-a.test"));
  const b = await startNode(redis, behindProxy("node-b.test"));
  const proxy = await startHaproxy({
    routes: [{
      name: "smtps",
      backendPort: a.smtpsPort,
      moreBackendPorts: [b.smtpsPort],
      server: "send-proxy-v2 source 127.0.0.2",
    }],
  });
  // Each test node made its own development CA; trust both.
  const caPem = a.caPem + b.caPem;
  const open = () => RawClient.open({ port: proxy.port("smtps"), caPem, implicitTls: true });
  // A closed connection gives its slot back asynchronously (a Redis call on its node):
  // until then a new one from the same address may still be over the cap.
  const openWhenFree = async (what: string): Promise<RawClient> => {
    let opened: RawClient | null = null;
    await until(what, async () => {
      const attempt = await open().catch(() => null);
      if (attempt === null) return false;
      const [client, greeting] = attempt;
      if (greeting.code === 220) {
        opened = client;
        return true;
      }
      client.close();
      return false;
    });
    return opened!;
  };
  const clients: RawClient[] = [];
  try {
    // Round robin: one connection on each node; the third is over the cap of 2 for 127.0.0.1.
    for (let i = 0; i < 2; i++) {
      const [client, greeting] = await open();
      clients.push(client);
      assert.equal(greeting.code, 220);
    }
    const names: string[] = [];
    for (const client of clients) {
      const ehlo = await client.command("EHLO client.example");
      names.push(ehlo.lines[0]);
    }
    assert.deepEqual(names.sort(), [
      "250-node-a.test Hello client.example [127.0.0.1]",
      "250-node-b.test Hello client.example [127.0.0.1]",
    ]);
    // Over the cap, SMTPS closes before any TLS work: the handshake fails, and the
    // refusal is audited with the real client address on the node that made it.
    await assert.rejects(open());
    await until(
      "the connection-limit audit event",
      () =>
        [a, b].some((node) =>
          node.audit.events.some((e) =>
            e.event === "rate_limit" && e.reason === "connection_limit" && e.ip === "127.0.0.1"
          )
        ),
    );
    // A connection that ends gives its slot back, whichever node held it.
    clients.pop()!.close();
    clients.push(await openWhenFree("a slot is free again"));
    for (const client of clients.splice(0)) client.close();

    // Failed logins of three different users from one address (a spray), spread over
    // both nodes, block that address (not the users) everywhere.
    for (let i = 0; i < 3; i++) {
      const client = await openWhenFree(`a slot for failed login ${i}`);
      await client.command("EHLO client.example");
      const auth = await client.command(
        "AUTH PLAIN " + encoder.encode(`\0nobody${i}@example.com\0wrong`).toBase64(),
      );
      assert.equal(auth.code, 535, `failure ${i}`);
      client.close();
    }
    for (let i = 0; i < 2; i++) {
      const client = await openWhenFree(`a slot for login ${i}`);
      await client.command("EHLO client.example");
      const auth = await client.command(
        "AUTH PLAIN " + encoder.encode(`\0${ALICE.email}\0${ALICE.password}`).toBase64(),
      );
      assert.equal(auth.code, 421, "the address is blocked on both nodes");
      client.close();
    }
    const blocked = [...a.audit.events, ...b.audit.events].filter((e) => e.event === "rate_limit");
    assert.ok(
      blocked.some((e) => e.scope === "address" && e.ip === "127.0.0.1"),
      JSON.stringify(blocked),
    );
  } finally {
    for (const client of clients) client.close();
    await proxy.close();
    await a.close();
    await b.close();
    await redis.close();
  }
});

/** Subjects of the messages in an outbox directory. */
async function subjects(outbox: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(outbox)) {
      if (!entry.name.endsWith(".eml")) continue;
      const text = await Deno.readTextFile(join(outbox, entry.name));
      const subject = /^Subject: (.*)$/m.exec(text)?.[1];
      if (subject) found.push(subject.trim());
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found;
}

Deno.test("kill node A (SIGKILL) mid-load behind HAProxy: B keeps serving; A's spool is delivered when A restarts", async () => {
  const redis = await startRedis();
  const proxied = { proxy_protocol: true, trusted_proxies: ["127.0.0.2/32"] };
  const b = await startNode(redis, { server: { hostname: "node-b.test" }, smtps: proxied });
  const dirA = await Deno.makeTempDir({ prefix: "relay-node-a-" });
  const portA = freePort();
  const outboxA = join(dirA, "outbox");
  // Node A is a real process, with B's certificate and users (as the operator deploys them).
  const configA = (hold: boolean) => ({
    server: { hostname: "node-a.test", shutdown_grace_seconds: 1 },
    smtps: { listen: `127.0.0.1:${portA}`, ...proxied },
    submission: { enabled: false },
    oauth: { enabled: false },
    tls: { cert: b.config.tls.cert, key: b.config.tls.key },
    auth: { workers: 1 },
    "auth.file": { users: b.config.auth.file.users, users_dir: b.config.auth.file.users_dir },
    // Held: what A accepts stays in its spool until the restart.
    spool: { dir: join(dirA, "spool"), hold },
    relay: { url: `file:${outboxA}` },
    audit: { file: join(dirA, "audit.jsonl") },
    state: { backend: "redis", url: redis.url },
    log: { level: "error", format: "json" },
  });
  let nodeA = await startRelayProcess(dirA, configA(true), portA);
  const proxy = await startHaproxy({
    routes: [{
      name: "smtps",
      backendPort: portA,
      moreBackendPorts: [b.smtpsPort],
      server: "send-proxy-v2 source 127.0.0.2 check inter 100 fall 1 rise 1",
    }],
  });
  const accepted: string[] = [];
  let stop = false;
  let next = 0;
  const worker = async () => {
    while (!stop) {
      let client: Client | undefined;
      try {
        client = await Client.connect({
          host: "127.0.0.1",
          port: proxy.port("smtps"),
          security: "implicit",
          servername: "localhost",
          caCerts: [b.caPem],
        });
        await client.auth({ username: ALICE.email, password: ALICE.password });
        for (let i = 0; i < 3 && !stop; i++) {
          const subject = `m${next++}`;
          if ((await send(client, subject)).final?.code === 250) accepted.push(subject);
        }
        await client.quit();
      } catch {
        // Node A died under this connection: what got a 250 is what counts.
        client?.close();
      }
    }
  };
  let workers: Promise<void>[] = [];
  try {
    workers = [worker(), worker(), worker()];
    await until("15 messages accepted by both nodes", () => accepted.length >= 15);
    await nodeA.kill();
    const atKill = accepted.length;
    await until("B accepts 15 more after A died", () => accepted.length >= atKill + 15, 20_000);
    stop = true;
    await Promise.all(workers);
    assert.ok((await subjects(b.outbox)).length > 0);
    assert.equal((await subjects(outboxA)).length, 0, "A held its mail");
    // On a host that is still up, the dead node's spool can be looked at (and acted on).
    const listed: string[] = [];
    const code = await runQueueCommand(
      ["list", "--json", "--spool", join(dirA, "spool")],
      b.config,
      {
        stdout: (line) => listed.push(line),
        stderr: (line) => listed.push(line),
      },
    );
    assert.equal(code, 0, listed.join("\n"));
    const held = (JSON.parse(listed.join("\n")) as unknown[]).length;
    assert.ok(held > 0, "A's spool holds what it accepted");

    nodeA = await startRelayProcess(dirA, configA(false), portA);
    await until("every accepted message delivered by A or B", async () => {
      const delivered = new Set([...await subjects(outboxA), ...await subjects(b.outbox)]);
      return accepted.every((subject) => delivered.has(subject));
    }, 20_000);
    assert.ok((await subjects(outboxA)).length >= held, "A delivered its spool after the restart");
  } finally {
    stop = true;
    await Promise.all(workers);
    await nodeA.kill();
    await proxy.close();
    await b.close();
    await redis.close();
    await Deno.remove(dirA, { recursive: true }).catch(() => {});
  }
});
