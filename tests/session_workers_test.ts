/**
 * `server.workers = 2`: sessions run on two Workers sharing the ports, and
 * every limit still counts once for the whole relay. Real TLS and real
 * clients (npm:nodemailer, raw SMTP); a connection is placed on a worker by
 * opening connections until the kernel hands one to it (the relay's
 * per-worker connection counts say where each landed).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { generateDevCertificates } from "../src/tls/mod.ts";
import { accepts, freePort } from "./support/ports.ts";
import {
  authenticated,
  connectTo,
  greeted,
  plain,
  queueId,
  RawClient,
  splitReceived,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";
import { serveConfig, startServe } from "./support/serve_process.ts";
import { until } from "./support/until.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

const TWO = { workers: 2 };
const ALICE = { email: "alice@example.com", password: "alice-secret-1" };

function perWorker(t: TestRelay): number[] {
  const workers = t.relay.workers;
  assert.ok(workers, "the relay runs session workers");
  return workers.connectionsPerWorker;
}

/**
 * Opens connections with `open` until one lands on `worker` (1-based); the
 * others are closed. The count moves before the greeting is sent, so it is
 * current once `open` returns.
 */
async function onWorker<T extends { close(): void }>(
  t: TestRelay,
  worker: number,
  open: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const before = perWorker(t)[worker - 1];
    // A connection just closed may still count for a moment against a cap: try again.
    const client = await open().catch(() => null);
    if (client && perWorker(t)[worker - 1] > before) return client;
    client?.close();
  }
  throw new Error(`no connection landed on worker ${worker} in 100 attempts`);
}

const message = (n: number) =>
  new TextEncoder().encode(
    `From: alice@example.com\r\nTo: r@dest.example\r\nSubject: worker test ${n}\r\n` +
      `Message-ID: <w${n}@client.example>\r\n\r\nline one\r\n.dot line\r\n${"x".repeat(5000)}\r\n`,
  );

Deno.test("workers = 2: nodemailer over SMTPS and STARTTLS, byte-exact at the backend, on both workers", async () => {
  const t = await startTestRelay({ config: { server: TWO } });
  try {
    let n = 0;
    for (const secure of [true, false]) {
      const seen = new Set<number>();
      // New connection per message, until each worker has taken at least two.
      while (n < 200 && (seen.size < 2 || perWorker(t).some((c) => c < 2))) {
        const before = perWorker(t);
        const transport = nodemailer.createTransport({
          host: "127.0.0.1",
          port: secure ? t.smtpsPort : t.submissionPort,
          secure,
          requireTLS: !secure,
          auth: { user: ALICE.email, pass: ALICE.password },
          tls: { ca: [t.caPem], servername: "localhost" },
        });
        const raw = message(++n);
        try {
          const info = await transport.sendMail({
            envelope: { from: ALICE.email, to: ["r@dest.example"] },
            raw: Buffer.from(raw),
          });
          const id = /queued as ([0-9A-F]+)$/.exec(info.response)?.[1];
          assert.ok(id, info.response);
          const { received, rest } = splitReceived(await waitForMessage(t.outbox, id));
          assert.match(received, new RegExp(`with ESMTPSA id ${id}\\r\\n`));
          assert.deepEqual(rest, raw);
        } finally {
          transport.close();
        }
        perWorker(t).forEach((count, i) => count > before[i] && seen.add(i));
      }
      assert.equal(seen.size, 2, `${secure ? "SMTPS" : "STARTTLS"}: messages on both workers`);
    }
    // The per-worker counts are exported for operators.
    const text = await t.relay.metrics.text();
    for (const [i, count] of perWorker(t).entries()) {
      assert.match(
        text,
        new RegExp(`relay_smtp_worker_connections_total\\{worker="${i + 1}"\\} ${count}\\b`),
      );
    }
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: a lockout earned through one worker holds on the other (exact count)", async () => {
  const t = await startTestRelay({
    config: { server: TWO, rate_limit: { enabled: true, per_minute: 4 } },
  });
  let guesses = 0;
  const fail = async (worker: number) => {
    const client = await onWorker(t, worker, () => greeted(t, "smtps"));
    try {
      // A different wrong password each time (a repeated one counts once).
      return (await client.command(`AUTH PLAIN ${plain(ALICE.email, `guess-${++guesses}`)}`))
        .text;
    } finally {
      client.close();
    }
  };
  try {
    // Four failures in a minute are allowed per (address, account), spread 1-2-1-2...
    for (const worker of [1, 2, 1, 2]) {
      assert.match(await fail(worker), /^535 5\.7\.8 /, `failure on worker ${worker}`);
    }
    // ...and the fifth is refused on either worker.
    for (const worker of [1, 2]) {
      assert.match(await fail(worker), /^421 4\.7\.0 Too many authentication failures/);
    }
    const attempts = t.audit.events.filter((e) => e.event === "auth_attempt");
    assert.equal(attempts.length, 4, "only the four admitted attempts were verified");
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: max_connections_per_ip counts the connections of both workers", async () => {
  const t = await startTestRelay({
    config: { server: TWO, limits: { max_connections_per_ip: 3 } },
  });
  const held: RawClient[] = [];
  try {
    const greetings: string[] = [];
    // Connect and hold until every worker has had at least three tries.
    while (greetings.length < 100 && perWorker(t).some((c) => c < 3)) {
      const [client, greeting] = await connectTo(t, "submission");
      // A refused connection is closed (it counts until the client lets go, as on one thread).
      if (greeting.code === 220) held.push(client);
      else client.close();
      greetings.push(greeting.text);
    }
    assert.equal(greetings.filter((g) => g.startsWith("220 ")).length, 3, greetings.join("\n"));
    for (const refused of greetings.filter((g) => !g.startsWith("220 "))) {
      assert.equal(
        refused,
        "421 4.7.0 relay.test Error: too many connections from 127.0.0.1",
      );
    }
    // One of the three leaves: the next connection, on whichever worker, is served.
    const first = held[greetings.findIndex((g) => g.startsWith("220 "))];
    assert.equal((await first.command("QUIT")).code, 221);
    first.close();
    await until("a new connection admitted", async () => {
      const [client, greeting] = await connectTo(t, "submission");
      if (greeting.code === 220) held.push(client);
      else client.close();
      return greeting.code === 220;
    });
  } finally {
    for (const client of held) client.close();
    await t.close();
  }
});

Deno.test("workers = 2: connections_per_ip_per_minute is one count for both workers", async () => {
  const t = await startTestRelay({
    config: { server: TWO, rate_limit: { connections_per_ip_per_minute: 4 } },
  });
  try {
    const codes: number[] = [];
    while (codes.length < 100 && perWorker(t).some((c) => c < 4)) {
      const [client, greeting] = await connectTo(t, "submission");
      codes.push(greeting.code);
      client.close();
    }
    assert.equal(codes.filter((c) => c === 220).length, 4, codes.join(" "));
    assert.ok(codes.slice(4).every((c) => c === 421), codes.join(" "));
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: a sending quota used on one worker is used up on the other", async () => {
  const t = await startTestRelay({ config: { server: TWO, quota: { user_messages_per_hour: 3 } } });
  const send = async (worker: number) => {
    const client = await onWorker(t, worker, () => authenticated(t, "smtps"));
    try {
      return await transaction(client, {
        from: ALICE.email,
        to: ["r@dest.example"],
        data: "Subject: quota\r\n\r\nx\r\n",
      });
    } finally {
      client.close();
    }
  };
  try {
    for (const worker of [1, 2, 1]) queueId(await send(worker));
    for (const worker of [2, 1]) {
      const client = await onWorker(t, worker, () => authenticated(t, "smtps"));
      try {
        const reply = await client.command(`MAIL FROM:<${ALICE.email}>`);
        assert.match(
          reply.text,
          /^451 4\.7\.1 Sending quota exceeded for alice@example\.com \(3 messages per hour\)/,
        );
      } finally {
        client.close();
      }
    }
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: a certificate reload reaches every worker", async () => {
  const t = await startTestRelay({ config: { server: TWO } });
  try {
    const next = await generateDevCertificates({
      dir: join(t.dir, "next"),
      hostnames: ["relay.test"],
    });
    const nextCa = await Deno.readTextFile(next.caCert);
    await Deno.copyFile(next.key, t.config.tls.key);
    await Deno.copyFile(next.cert, t.config.tls.cert);
    const result = await t.relay.reloadTls("SIGHUP");
    assert.equal(result.ok, true);
    for (const worker of [1, 2]) {
      for (const kind of ["smtps", "submission"] as const) {
        // Trusting only the new CA: the handshake succeeds only with the new certificate.
        const client = await onWorker(
          t,
          worker,
          () => greeted({ ...t, caPem: nextCa }, kind),
        );
        assert.equal(client.tls, true);
        client.close();
      }
    }
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: PROXY protocol on the workers' listeners", async () => {
  const t = await startTestRelay({
    config: {
      server: TWO,
      submission: { proxy_protocol: true, trusted_proxies: ["127.0.0.1"] },
    },
  });
  try {
    for (const worker of [1, 2]) {
      const { client, greeting } = await onWorker(t, worker, async () => {
        const client = await RawClient.connect({ port: t.submissionPort });
        await client.write(`PROXY TCP4 198.51.100.${worker} 127.0.0.1 40000 587\r\n`);
        // The greeting comes once the worker counted the connection.
        return { client, greeting: await client.reply(), close: () => client.close() };
      });
      try {
        assert.equal(greeting.code, 220);
        const ehlo = await client.command("EHLO client.example");
        assert.equal(ehlo.lines[0], `250-relay.test Hello client.example [198.51.100.${worker}]`);
      } finally {
        client.close();
      }
    }
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: shutdown lets a transaction on a worker finish, 421 to idle sessions, then stops the workers", async () => {
  const t = await startTestRelay({ config: { server: TWO } });
  let closed = false;
  try {
    const busy = await onWorker(t, 1, () => authenticated(t, "submission"));
    const idle = await onWorker(t, 2, () => authenticated(t, "smtps"));
    assert.equal((await busy.command(`MAIL FROM:<${ALICE.email}>`)).code, 250);
    assert.equal((await busy.command("RCPT TO:<r@dest.example>")).code, 250);
    assert.equal((await busy.command("DATA")).code, 354);
    await busy.write("Subject: drained\r\n\r\nhalf ");
    const closing = t.relay.close(5000);
    assert.match((await idle.reply()).text, /^421 4\.3\.2 /);
    await busy.write("and the rest\r\n");
    queueId(await busy.command("."));
    assert.match((await busy.reply()).text, /^421 4\.3\.2 /);
    await closing;
    closed = true;
    assert.equal(await accepts(t.smtpsPort), false, "no worker listens after close");
    assert.equal(await accepts(t.submissionPort), false);
    busy.close();
    idle.close();
  } finally {
    if (!closed) await t.close();
    else await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("workers = 2: a crashed worker is restarted and what it held is released", async () => {
  const t = await startTestRelay({
    config: { server: TWO, limits: { max_connections_per_ip: 2 } },
  });
  try {
    const held = await onWorker(t, 1, () => authenticated(t, "smtps"));
    t.relay.workers!.crashForTest(1);
    await held.expectEof();
    held.close();
    // The lost connection no longer counts: two at once are served again (else 1 + 2 > 2).
    await until("two connections admitted at once", async () => {
      const pair = await Promise.all([
        connectTo(t, "submission").catch(() => null),
        connectTo(t, "submission").catch(() => null),
      ]);
      for (const opened of pair) opened?.[0].close();
      return pair.every((opened) => opened?.[1].code === 220);
    });
    // The restarted worker 1 takes mail again.
    let id = "";
    await until("a message through the restarted worker 1", async () => {
      const before = perWorker(t)[0];
      const client = await authenticated(t, "submission").catch(() => null);
      try {
        if (!client || perWorker(t)[0] === before) return false;
        id = queueId(
          await transaction(client, {
            from: ALICE.email,
            to: ["r@dest.example"],
            data: "Subject: after the crash\r\n\r\nok\r\n",
          }),
        );
        return true;
      } finally {
        client?.close();
      }
    });
    await waitForMessage(t.outbox, id);
  } finally {
    await t.close();
  }
});

Deno.test("workers = 2: a port taken by another process fails the start, naming the key", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      startTestRelay({ config: { server: TWO, submission: { listen: `127.0.0.1:${port}` } } }),
      new RegExp(
        `^Error: submission\\.listen = "127\\.0\\.0\\.1:${port}": cannot listen: address already in use`,
      ),
    );
  } finally {
    taken.close();
  }
});

Deno.test("relay serve with workers = 2: SIGHUP reloads the certificate on every worker", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_workers_sighup_" });
  const port = freePort();
  const configPath = join(dir, "relay.toml");
  await Deno.writeTextFile(
    configPath,
    serveConfig(dir, { listener: "smtps", port, sections: { tls: { reload: false } } })
      .replace("shutdown_grace_seconds = 1\n", "shutdown_grace_seconds = 1\nworkers = 2\n"),
  );
  const relay = await startServe({
    args: ["-A", MAIN, "serve", "--config", configPath],
    cwd: ROOT,
  });
  try {
    assert.match(relay.output(), /SMTP sessions on 2 session workers/);
    const next = await generateDevCertificates({
      dir: join(dir, "next"),
      hostnames: ["relay.test"],
    });
    const nextCa = await Deno.readTextFile(next.caCert);
    await Deno.copyFile(next.key, join(dir, "certs", "server.key"));
    await Deno.copyFile(next.cert, join(dir, "certs", "server.crt"));
    relay.kill("SIGHUP");
    await until(
      "TLS certificate reloaded",
      () => relay.output().includes("TLS certificate reloaded"),
    );
    // Every new handshake, on whichever worker, now presents the new certificate.
    const admin = /admin listener at (http:\/\/[^ ]+) /.exec(relay.output())![1];
    for (let i = 0; i < 20; i++) {
      const [client, greeting] = await RawClient.open({ port, caPem: nextCa, implicitTls: true });
      assert.equal(greeting.code, 220);
      client.close();
    }
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    for (const worker of [1, 2]) {
      assert.match(
        metrics,
        new RegExp(`relay_smtp_worker_connections_total\\{worker="${worker}"\\} [1-9]`),
      );
    }
    assert.equal((await relay.stop()).code, 0, relay.output());
  } finally {
    await relay[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("workers = 2: a 3 MiB message crosses to the main thread's spool intact", async () => {
  const t = await startTestRelay({ config: { server: TWO } });
  try {
    const line =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789abcdef\r\n";
    const body = line.repeat(Math.ceil(3 * 1024 * 1024 / line.length));
    const data = new TextEncoder().encode(`Subject: big\r\n\r\n${body}`);
    for (const worker of [1, 2]) {
      const client = await onWorker(t, worker, () => authenticated(t, "smtps"));
      try {
        const id = queueId(
          await transaction(client, { from: ALICE.email, to: ["r@dest.example"], data }),
        );
        const { rest } = splitReceived(await waitForMessage(t.outbox, id));
        assert.equal(rest.length, data.length);
        assert.deepEqual(rest, data);
      } finally {
        client.close();
      }
    }
  } finally {
    await t.close();
  }
});
