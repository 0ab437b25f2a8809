/**
 * Slowloris: every limit is a deadline, not an idle timer restarted by each
 * byte. A client trickling one byte at a time is cut off with 421 4.4.2 at
 * the deadline on both ports, during DATA, in a TLS handshake, and at the
 * session's maximum duration; a crowd of tricklers filling every connection
 * slot keeps a real client out no longer than the deadline.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { authenticated, connectTo, type PortKind } from "./support/raw_client.ts";
import { connectAs, startTestRelay, type TestRelay } from "./support/relay.ts";
import { until } from "./support/until.ts";

/** A plain or TLS socket, with everything it received and when it closed. */
interface Trickler {
  socket: net.Socket;
  received: () => string;
  closed: Promise<number>;
  /** Writes `bytes` one at a time every `everyMs` until the socket closes. */
  trickle(bytes: Uint8Array | string, everyMs: number): void;
}

function track(socket: net.Socket): Trickler {
  let text = "";
  let timer: ReturnType<typeof setInterval> | undefined;
  socket.on("data", (chunk: Uint8Array) => text += new TextDecoder().decode(chunk));
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) =>
    socket.once("close", () => {
      clearInterval(timer);
      resolve(performance.now());
    })
  );
  return {
    socket,
    received: () => text,
    closed,
    trickle(bytes, everyMs) {
      const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
      let i = 0;
      timer = setInterval(() => {
        if (socket.destroyed) return;
        socket.write(data.subarray(i % data.length, i % data.length + 1));
        i++;
      }, everyMs);
    },
  };
}

function connectPlain(port: number, localAddress?: string): Promise<Trickler> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      socket.off("error", reject);
      resolve(track(socket));
    });
    socket.once("error", reject);
  });
}

function connectSmtps(t: TestRelay): Promise<Trickler> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port: t.smtpsPort, ca: [t.caPem], servername: "localhost" },
      () => {
        socket.off("error", reject);
        resolve(track(socket));
      },
    );
    socket.once("error", reject);
  });
}

async function sendsNormally(t: TestRelay, subject: string): Promise<void> {
  const c = await connectAs(t);
  try {
    const sent = await c.send({
      from: "alice@example.com",
      to: ["ok@example.net"],
      data: new TextEncoder().encode(`Subject: ${subject}\r\n\r\nyes\r\n`),
    });
    assert.equal(sent.final?.code, 250);
  } finally {
    await c.quit();
  }
}

/** Asserts the close came at the deadline: not before it, and not long after. */
function atDeadline(startedAt: number, closedAt: number, deadlineMs: number): void {
  const took = closedAt - startedAt;
  assert.ok(
    took >= deadlineMs - 100,
    `closed after ${took} ms, before the ${deadlineMs} ms deadline`,
  );
  assert.ok(
    took < deadlineMs + 3000,
    `closed after ${took} ms, long after the ${deadlineMs} ms deadline`,
  );
}

/**
 * Authenticates on `kind`, opens DATA and writes `chunk` every `everyMs`
 * until the relay closes; asserts the 421 text came at `deadlineMs`.
 */
async function trickleData(
  t: TestRelay,
  kind: PortKind,
  chunk: string,
  everyMs: number,
  expected: { text: string; deadlineMs: number },
): Promise<void> {
  const c = await authenticated(t, kind);
  try {
    await c.command("MAIL FROM:<alice@example.com>");
    await c.command("RCPT TO:<x@dest.example>");
    assert.equal((await c.command("DATA")).code, 354);
    const started = performance.now();
    const timer = setInterval(() => c.write(chunk).catch(() => {}), everyMs);
    try {
      assert.equal((await c.reply()).text, expected.text);
      atDeadline(started, performance.now(), expected.deadlineMs);
    } finally {
      clearInterval(timer);
    }
    await c.expectEof();
  } finally {
    c.close();
  }
}

const TIMEOUT = "421 4.4.2 relay.test Error: timeout exceeded\r\n";

Deno.test("a 1-byte trickle of a command line is closed at the deadline on both ports", async () => {
  const t = await startTestRelay({ config: { limits: { command_timeout_seconds: 1 } } });
  try {
    for (const kind of ["submission", "smtps"] as PortKind[]) {
      const c = kind === "smtps" ? await connectSmtps(t) : await connectPlain(t.submissionPort);
      await until(`the ${kind} greeting`, () => c.received().includes("220 "));
      const started = performance.now();
      // One byte every 100 ms of an endless line: an idle timer would never fire.
      c.trickle("X", 100);
      const closedAt = await c.closed;
      atDeadline(started, closedAt, 1000);
      assert.ok(c.received().endsWith(TIMEOUT), `${kind}: ${JSON.stringify(c.received())}`);
    }
    assert.ok(
      t.audit.events.some((e) => e.event === "security_deadline" && e.deadline === "command"),
    );
    await sendsNormally(t, "after tricklers");
  } finally {
    await t.close();
  }
});

Deno.test("DATA trickled a byte at a time is closed at its total deadline; nothing is queued", async () => {
  const t = await startTestRelay({ config: { limits: { data_timeout_seconds: 1 } } });
  try {
    await trickleData(t, "smtps", "y", 100, {
      text: "421 4.4.2 relay.test Error: timeout exceeded during DATA",
      deadlineMs: 1000,
    });
    await sendsNormally(t, "after a trickled DATA");
    // Only the normal message was relayed: the trickled one was dropped.
    const files = await t.waitForOutbox(1);
    assert.equal(files.length, 1);
    assert.match(await Deno.readTextFile(files[0]), /Subject: after a trickled DATA/);
  } finally {
    await t.close();
  }
});

Deno.test("DATA below the minimum rate after the grace period is closed long before its deadline", async () => {
  const t = await startTestRelay({
    config: {
      limits: {
        data_timeout_seconds: 60,
        data_min_bytes_per_second: 1000,
        data_rate_grace_seconds: 1,
      },
    },
  });
  try {
    // 10 bytes every 50 ms: 200 bytes/s, a fifth of the minimum.
    await trickleData(t, "submission", "0123456789", 50, {
      text: "421 4.4.2 relay.test Error: DATA transfer too slow",
      deadlineMs: 1000,
    });
    assert.ok(
      t.audit.events.some((e) => e.event === "security_deadline" && e.deadline === "data_rate"),
    );
  } finally {
    await t.close();
  }
});

Deno.test("a busy session ends at its maximum duration", async () => {
  const t = await startTestRelay({ config: { limits: { session_max_seconds: 1.5 } } });
  try {
    const [c] = await connectTo(t, "submission");
    const started = performance.now();
    try {
      let reply = await c.command("EHLO client.example");
      // A client that keeps every command line short and on time.
      while (reply.code === 250) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        reply = await c.command("NOOP");
      }
      assert.equal(reply.text, "421 4.4.2 relay.test Error: session lasted too long");
      atDeadline(started, performance.now(), 1500);
      await c.expectEof();
    } finally {
      c.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("a trickled TLS handshake is closed at its deadline: STARTTLS and SMTPS", async () => {
  const t = await startTestRelay({ config: { tls: { handshake_timeout_seconds: 1 } } });
  // The start of a TLS record (handshake, TLS 1.0 framing, 512 bytes) that never completes.
  const record = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  try {
    const plain = await connectPlain(t.submissionPort);
    await until("the greeting", () => plain.received().includes("220 "));
    plain.socket.write("EHLO client.example\r\n");
    await until("the EHLO reply", () => plain.received().includes("250 "));
    plain.socket.write("STARTTLS\r\n");
    await until("the 220 to STARTTLS", () => plain.received().includes("220 2.0.0"));
    let started = performance.now();
    plain.trickle(record, 100);
    atDeadline(started, await plain.closed, 1000);

    const implicit = await connectPlain(t.smtpsPort);
    started = performance.now();
    implicit.trickle(record, 100);
    atDeadline(started, await implicit.closed, 1000);
    assert.equal(implicit.received(), "");
    await until(
      "both handshake failures audited",
      () => t.audit.events.filter((e) => e.event === "security_tls_failed").length >= 2,
    );
  } finally {
    await t.close();
  }
});

Deno.test("1,000 trickling connections keep a real client out no longer than the deadline", async () => {
  const deadlineMs = 3000;
  const t = await startTestRelay({
    config: {
      limits: {
        command_timeout_seconds: deadlineMs / 1000,
        max_connections: 1000,
        max_connections_per_ip: 50,
      },
    },
  });
  const crowd: Trickler[] = [];
  try {
    // 20 addresses, 50 connections each: every slot taken.
    const started = performance.now();
    for (let a = 1; a <= 20; a++) {
      crowd.push(
        ...await Promise.all(
          Array.from({ length: 50 }, () => connectPlain(t.submissionPort, `127.0.1.${a}`)),
        ),
      );
    }
    await until("every trickler greeted", () => crowd.every((c) => c.received().includes("220 ")));
    for (const c of crowd) c.trickle("X", 500);
    // While they hold every slot a real client is turned away...
    const [refused, greeting] = await connectTo(t, "submission");
    refused.close();
    assert.match(greeting.text, /^421 4\.7\.0 .*too many connections/i);
    // ...until the deadline cuts them off.
    await until(
      "a free connection slot",
      async () => {
        const [probe, hello] = await connectTo(t, "submission");
        probe.close();
        return hello.code === 220;
      },
      deadlineMs + 5000,
      100,
    );
    await sendsNormally(t, "past the crowd");
    const waited = performance.now() - started;
    assert.ok(waited < deadlineMs + 3000, `the real client waited ${waited} ms`);
    const closedAt = await Promise.all(crowd.map((c) => c.closed));
    assert.ok(closedAt.every((at) => at - started < deadlineMs + 3000));
    assert.equal(crowd.filter((c) => c.received().endsWith(TIMEOUT)).length, 1000);
  } finally {
    for (const c of crowd) c.socket.destroy();
    await t.close();
  }
});
