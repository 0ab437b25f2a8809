import assert from "node:assert/strict";
import * as net from "node:net";
import type * as tls from "node:tls";
import {
  createServerContext,
  generateDevCertificates,
  loadTlsMaterial,
  TlsHandshakeError,
  upgradeServerSocket,
} from "./mod.ts";
import { startEchoServer } from "./_testing.ts";

async function devContext(dir: string): Promise<{ context: tls.SecureContext; caPem: string }> {
  const paths = await generateDevCertificates({ dir });
  const context = createServerContext(await loadTlsMaterial(paths), { minVersion: "1.3" });
  return { context, caPem: await Deno.readTextFile(paths.caCert) };
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(1024);
  let text = "";
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return text;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
}

Deno.test("upgradeServerSocket() rejects and closes a client that never starts the handshake", async () => {
  const dir = await Deno.makeTempDir();
  const { context } = await devContext(dir);
  const server = await startEchoServer({ context: () => context, handshakeTimeoutMs: 150 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const started = performance.now();
    const outcome = await server.nextOutcome();
    const elapsed = performance.now() - started;
    assert.equal(outcome.ok, false);
    assert.ok(!outcome.ok && outcome.error instanceof TlsHandshakeError);
    assert.equal((outcome.error as TlsHandshakeError).reason, "timeout");
    assert.match(outcome.error.message, /not completed within 150 ms/);
    assert.ok(elapsed >= 100 && elapsed < 2000, `rejected after ${elapsed} ms`);
    // The server destroyed the socket: the client reads end-of-stream.
    assert.equal(await readAll(conn), "");
    conn.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("upgradeServerSocket() rejects a client that speaks plain text instead of TLS", async () => {
  const dir = await Deno.makeTempDir();
  const { context } = await devContext(dir);
  const server = await startEchoServer({ context: () => context, handshakeTimeoutMs: 5000 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(new TextEncoder().encode("EHLO client.example\r\n"));
    const outcome = await server.nextOutcome();
    assert.ok(!outcome.ok && outcome.error instanceof TlsHandshakeError);
    assert.notEqual((outcome.error as TlsHandshakeError).reason, "timeout");
    await readAll(conn);
    conn.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("upgradeServerSocket() does STARTTLS mid-session and keeps bytes sent right after the handshake", async () => {
  const dir = await Deno.makeTempDir();
  const { context, caPem } = await devContext(dir);
  const sockets = new Set<net.Socket>();
  const served = Promise.withResolvers<string>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    sock.write("220 ready\r\n");
    const onCommand = async (chunk: Uint8Array) => {
      if (!new TextDecoder().decode(chunk).startsWith("STARTTLS")) return;
      sock.off("data", onCommand);
      sock.write("220 2.0.0 go ahead\r\n");
      const secure = await upgradeServerSocket(sock, context, { handshakeTimeoutMs: 5000 });
      sockets.add(secure);
      secure.on("error", () => {});
      // A slow caller: bytes the client already sent must wait, not vanish.
      await new Promise((resolve) => setTimeout(resolve, 30));
      let received = "";
      secure.on("data", (data: Uint8Array) => {
        received += new TextDecoder().decode(data);
        if (received.endsWith("\r\n")) {
          secure.end(`250 got ${received}`);
          served.resolve(secure.getProtocol() ?? "");
        }
      });
      secure.resume();
    };
    sock.on("data", onCommand);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    const buffer = new Uint8Array(256);
    const readLine = async (conn: Deno.Conn) => {
      const n = await conn.read(buffer);
      return new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    };
    assert.equal(await readLine(tcp), "220 ready\r\n");
    await tcp.write(new TextEncoder().encode("STARTTLS\r\n"));
    assert.equal(await readLine(tcp), "220 2.0.0 go ahead\r\n");
    const conn = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [caPem] });
    await conn.handshake();
    await conn.write(new TextEncoder().encode("EHLO client.example\r\n"));
    assert.equal(await readAll(conn), "250 got EHLO client.example\r\n");
    assert.equal(await served.promise, "TLSv1.3");
    conn.close();
  } finally {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const sock of sockets) sock.destroy();
    await closed;
    await Deno.remove(dir, { recursive: true });
  }
});
