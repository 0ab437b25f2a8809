/**
 * Graceful shutdown: idle sessions hear 421 4.3.2 at once, a message in
 * DATA is finished (250) before its session is closed, sessions still busy
 * at the deadline get 421, and no new connection is served once shutdown
 * has begun.
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import type { BearerResult } from "../src/auth/authenticator.ts";
import { createXoauth2, xoauth2FailureChallenge } from "../src/sasl/xoauth2.ts";
import {
  authenticated,
  b64,
  connectTo,
  GREETING,
  PORTS,
  queueId,
  RawClient,
} from "./support/raw_client.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";

const SHUTTING_DOWN = "421 4.3.2 relay.test Service shutting down, closing transmission channel";

/** Resolves `true` when a new client is not served: refused, or closed without a greeting. */
async function notServed(port: number): Promise<boolean> {
  let client: RawClient;
  try {
    client = await RawClient.connect({ port, timeoutMs: 2000 });
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
  try {
    const text = await client.readAll();
    return !text.startsWith("220");
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Whether `id` was kept: delivered to the outbox or still in the spool. */
async function kept(relay: TestRelay, id: string): Promise<boolean> {
  if (await relay.relay.spool.has(id)) return true;
  try {
    await Deno.stat(join(relay.outbox, `${id}.eml`));
    return true;
  } catch {
    return false; // not there
  }
}

Deno.test("shutdown: idle sessions get 421 4.3.2 at once", async () => {
  const relay = await startTestRelay();
  try {
    const [plainIdle] = await connectTo(relay, "submission");
    const authedIdle = await authenticated(relay, "smtps");
    const tlsIdle = await authenticated(relay, "submission");
    const [midAuth] = await connectTo(relay, "smtps");
    await midAuth.command("EHLO client.example");
    strictEqual((await midAuth.command("AUTH LOGIN")).text, "334 VXNlcm5hbWU6");
    const clients = [plainIdle, authedIdle, tlsIdle, midAuth];
    try {
      const started = Date.now();
      const closing = relay.relay.close(5000);
      for (const c of clients) {
        strictEqual((await c.reply()).text, SHUTTING_DOWN);
        await c.expectEof();
        // A well-behaved client hangs up too (the server waits a little for that).
        c.close();
      }
      await closing;
      // Idle sessions do not wait for the grace period.
      ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    } finally {
      for (const c of clients) c.close();
    }
  } finally {
    await relay.close();
  }
});

Deno.test("shutdown: a message in DATA is finished before the session closes", async () => {
  const relay = await startTestRelay();
  try {
    const sessions = await Promise.all(PORTS.map((kind) => authenticated(relay, kind)));
    try {
      for (const c of sessions) {
        await c.command("MAIL FROM:<alice@example.com>");
        await c.command("RCPT TO:<x@dest.example>");
        strictEqual((await c.command("DATA")).code, 354);
        await c.write("Subject: in flight\r\n\r\nfirst half\r\n");
      }
      const closing = relay.relay.close(5000);
      // New connections are not served while the shutdown waits for these sessions.
      ok(await notServed(relay.smtpsPort), "SMTPS still accepting");
      ok(await notServed(relay.submissionPort), "submission still accepting");
      // The sessions in DATA were left alone: their next reply is the message's 250.
      const ids: string[] = [];
      for (const c of sessions) {
        await c.write("second half\r\n.\r\n");
        ids.push(queueId(await c.reply()));
        strictEqual((await c.reply()).text, SHUTTING_DOWN);
        await c.expectEof();
        c.close();
      }
      await closing;
      for (const id of ids) ok(await kept(relay, id), `message ${id} was lost`);
    } finally {
      for (const c of sessions) c.close();
    }
  } finally {
    await relay.close();
  }
});

Deno.test("shutdown: sessions still busy at the deadline get 421 4.3.2", async () => {
  const relay = await startTestRelay();
  try {
    const c = await authenticated(relay, "smtps");
    const d = await authenticated(relay, "submission");
    try {
      // An open transaction (not yet in DATA) counts as busy, as does a slow DATA.
      strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
      await d.command("MAIL FROM:<alice@example.com>");
      await d.command("RCPT TO:<x@dest.example>");
      strictEqual((await d.command("DATA")).code, 354);
      await d.write("Subject: never finished\r\n\r\n");
      const started = Date.now();
      const closing = relay.relay.close(300);
      strictEqual((await c.reply()).text, SHUTTING_DOWN);
      strictEqual((await d.reply()).text, SHUTTING_DOWN);
      const waited = Date.now() - started;
      ok(waited >= 250, `421 came after ${waited} ms, before the grace period ended`);
      await c.expectEof();
      await d.expectEof();
      c.close();
      d.close();
      await closing;
      // The unfinished message left nothing behind.
      const tmp = [...Deno.readDirSync(join(relay.config.spool.dir, "tmp"))];
      strictEqual(tmp.length, 0);
      strictEqual((await relay.relay.spool.list()).length, 0);
      strictEqual((await relay.outboxFiles()).length, 0);
    } finally {
      c.close();
      d.close();
    }
  } finally {
    await relay.close();
  }
});

Deno.test("shutdown: a connection that never starts TLS does not hold it up for the handshake timeout", async () => {
  // A TCP health check, a port scanner or a client stalled before its ClientHello.
  const relay = await startTestRelay({ config: { tls: { handshake_timeout_seconds: 120 } } });
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: relay.smtpsPort });
    const gone = await Deno.connect({ hostname: "127.0.0.1", port: relay.smtpsPort });
    gone.close();
    try {
      const started = Date.now();
      await relay.relay.close(1000);
      // The grace is for sessions; a handshake not begun is cut at its end.
      ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
      // The silent client sees its connection closed.
      strictEqual(await silent.read(new Uint8Array(16)), null);
    } finally {
      silent.close();
    }
  } finally {
    await relay.close();
  }
});

Deno.test("shutdown: listeners stop accepting at once", async () => {
  const relay = await startTestRelay();
  try {
    const [c, greeting] = await connectTo(relay, "submission");
    strictEqual(greeting.text, GREETING);
    try {
      const closing = relay.relay.close(1000);
      strictEqual((await c.reply()).text, SHUTTING_DOWN);
      c.close();
      await closing;
      ok(await notServed(relay.smtpsPort));
      ok(await notServed(relay.submissionPort));
    } finally {
      c.close();
    }
  } finally {
    await relay.close();
  }
});

Deno.test("shutdown: a request that arrives while the session is busy but idle is not lost", async () => {
  // The token check is held open by the test, so shutdown starts while the
  // session is between reads (idle, no transaction). The session then sends
  // its 334 failure challenge and reads again: that read must end at once
  // with 421, not wait for the grace deadline.
  let release!: (result: BearerResult) => void;
  let checking!: () => void;
  const checkStarted = new Promise<void>((resolve) => checking = resolve);
  const relay = await startTestRelay({
    start: {
      bearer: {
        verifier: {
          verifyBearer: () => {
            checking();
            return new Promise((resolve) => release = resolve);
          },
        },
        mechanisms: { XOAUTH2: { create: createXoauth2 } },
        failureChallenge: (_mechanism, status, scope) => xoauth2FailureChallenge(status, scope),
      },
    },
  });
  try {
    const [c] = await connectTo(relay, "smtps");
    try {
      await c.command("EHLO client.example");
      await c.send(`AUTH XOAUTH2 ${b64("user=alice@example.com\x01auth=Bearer expired\x01\x01")}`);
      await checkStarted;
      const started = Date.now();
      // close() asks every session to shut down before it first awaits anything.
      const closing = relay.relay.close(4000);
      release({ ok: false, reason: "invalid_credentials", status: "invalid_token" });
      strictEqual((await c.reply()).code, 334);
      strictEqual((await c.reply()).text, SHUTTING_DOWN);
      const waited = Date.now() - started;
      ok(waited < 2000, `421 came after ${waited} ms: the shutdown request was lost`);
      await c.expectEof();
      c.close();
      await closing;
    } finally {
      c.close();
    }
  } finally {
    await relay.close();
  }
});
