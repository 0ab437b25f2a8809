import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import net from "node:net";
import { normalizeAddress, SocketStream, StreamTimeoutError } from "./byte_stream.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connected pair: the server side wrapped in a SocketStream, the client a Deno.Conn. */
async function pair(): Promise<
  { stream: SocketStream; client: Deno.Conn; close(): Promise<void> }
> {
  let accepted!: (socket: net.Socket) => void;
  const socketReady = new Promise<net.Socket>((resolve) => accepted = resolve);
  const server = net.createServer((socket) => accepted(socket));
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  const socket = await socketReady;
  const stream = new SocketStream(socket);
  return {
    stream,
    client,
    async close() {
      const closed = new Promise((resolve) => socket.once("close", resolve));
      stream.close();
      try {
        client.close();
      } catch { /* already closed */ }
      await closed;
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

Deno.test("SocketStream: reads bytes, writes bytes, reports the peer", async () => {
  const p = await pair();
  try {
    strictEqual(p.stream.remoteAddress, "127.0.0.1");
    strictEqual(p.stream.tls, null);
    await p.client.write(encoder.encode("hello"));
    strictEqual(decoder.decode((await p.stream.read())!), "hello");
    await p.stream.write(encoder.encode("back"));
    const buf = new Uint8Array(16);
    const n = await p.client.read(buf);
    strictEqual(decoder.decode(buf.subarray(0, n!)), "back");
  } finally {
    await p.close();
  }
});

Deno.test("SocketStream: interrupt rejects a pending read", async () => {
  const p = await pair();
  try {
    const reading = p.stream.read();
    p.stream.interrupt(new Error("stop"));
    await rejects(reading, { message: "stop" });
  } finally {
    await p.close();
  }
});

Deno.test("SocketStream: an interrupt with no read pending rejects the next read once", async () => {
  const p = await pair();
  try {
    await p.client.write(encoder.encode("queued"));
    // Let the bytes arrive first: the interrupt must still win over buffered input.
    await new Promise((resolve) => setTimeout(resolve, 20));
    p.stream.interrupt(new Error("shutdown"));
    await rejects(p.stream.read(), { message: "shutdown" });
    strictEqual(decoder.decode((await p.stream.read())!), "queued");
  } finally {
    await p.close();
  }
});

Deno.test("SocketStream: the read deadline is not restarted by trickling bytes", async () => {
  const p = await pair();
  try {
    p.stream.setReadDeadline(300);
    const started = Date.now();
    // One byte every 50 ms: an idle timer would never fire.
    const trickle = setInterval(() => p.client.write(encoder.encode("x")).catch(() => {}), 50);
    try {
      let error: unknown = null;
      while (error === null) {
        await p.stream.read().catch((e) => error = e);
      }
      strictEqual(error instanceof StreamTimeoutError, true);
    } finally {
      clearInterval(trickle);
    }
    const took = Date.now() - started;
    strictEqual(took >= 280 && took < 2000, true, `took ${took} ms`);
    // A new deadline (or none) makes the stream usable again.
    p.stream.setReadDeadline(null);
    await p.client.write(encoder.encode("late"));
    let text = "";
    while (!text.endsWith("late")) text += decoder.decode((await p.stream.read())!);
  } finally {
    await p.close();
  }
});

Deno.test("SocketStream: end of stream and close resolve reads with null", async () => {
  const p = await pair();
  try {
    const reading = p.stream.read();
    p.client.closeWrite();
    strictEqual(await reading, null);
    strictEqual(await p.stream.read(), null);
  } finally {
    await p.close();
  }
  const q = await pair();
  try {
    const reading = q.stream.read();
    q.stream.close();
    strictEqual(await reading, null);
    strictEqual(q.stream.closed, true);
    // Writes after close are dropped, not thrown.
    await q.stream.write(encoder.encode("ignored"));
  } finally {
    await q.close();
  }
});

Deno.test("normalizeAddress: IPv4-mapped IPv6 becomes IPv4, others stay", () => {
  deepStrictEqual(
    ["::ffff:127.0.0.1", "127.0.0.1", "::1", "2001:db8::1"].map(normalizeAddress),
    ["127.0.0.1", "127.0.0.1", "::1", "2001:db8::1"],
  );
});
