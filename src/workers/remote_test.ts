import assert from "node:assert/strict";
import type { Envelope } from "../mail/envelope.ts";
import type { MainApi, WorkerApi } from "./protocol.ts";
import { RemoteSink, SINK_HIGH_WATER, SINK_LOW_WATER } from "./remote.ts";
import { RpcPeer } from "./rpc.ts";

const ENVELOPE: Envelope = {
  v: 1,
  id: "A1",
  from: "a@example.com",
  recipients: ["b@example.com"],
  receivedAt: "2026-11-29T00:00:00.000Z",
  client: { address: "127.0.0.1", helo: "client.example", user: "a@example.com" },
};

Deno.test("RemoteSink: bytes arrive in order, the caller's buffer stays usable, drain waits for the main thread's acks", async () => {
  const channel = new MessageChannel();
  channel.port1.start();
  channel.port2.start();
  const received: Uint8Array[] = [];
  const written = Promise.withResolvers<void>();
  const main = {
    sinkBegin: () => {},
    sinkWrite: (_id: number, bytes: Uint8Array) => {
      received.push(bytes);
      if (received.length === 3) written.resolve();
    },
    sinkCommit: () =>
      Promise.resolve({ reply: { code: 250, enhanced: "2.0.0", lines: ["Ok"] }, accepted: true }),
  } as unknown as MainApi;
  const mainPeer = new RpcPeer<WorkerApi, MainApi>(channel.port1, main);
  const workerPeer = new RpcPeer<MainApi, WorkerApi>(channel.port2, {
    sinkAck: (id: number, bytes: number) => sink.acknowledge(id, bytes),
  } as unknown as WorkerApi);
  // Acks only arrive once the test runs, after `sink` exists.
  const sink = new RemoteSink(workerPeer);
  try {
    const tx = sink.begin(ENVELOPE);
    // Views into one larger buffer, as a socket hands them out.
    const socketBuffer = new Uint8Array(3 * 600_000).map((_, i) => i % 251);
    const chunks = [0, 1, 2].map((i) => socketBuffer.subarray(i * 600_000, (i + 1) * 600_000));
    for (const chunk of chunks) tx.write(chunk);
    assert.equal(socketBuffer.byteLength, 1_800_000, "the socket's buffer is not detached");
    assert.ok(1_800_000 > SINK_HIGH_WATER);
    const drained = tx.drain();
    assert.ok(drained, "more than the high-water mark in flight: drain waits");
    let done = false;
    void drained.then(() => done = true);
    await written.promise;
    assert.deepEqual(received.map((b) => b[0]), chunks.map((c) => c[0]));
    assert.deepEqual(new Uint8Array(received.flatMap((b) => [...b])), socketBuffer);
    // The main thread takes 1 MiB: 736 KB still in flight, above the low-water mark.
    mainPeer.notify("sinkAck", [1, 1_064_000]);
    assert.ok(1_800_000 - 1_064_000 > SINK_LOW_WATER);
    // A call's answer comes after the notice: by then the ack was taken, and drain still waits.
    await workerPeer.call("sinkCommit", 99);
    assert.equal(done, false);
    // ...and the rest.
    mainPeer.notify("sinkAck", [1, 736_000]);
    await drained;
    assert.equal(done, true);
    assert.equal(tx.drain(), undefined);
    assert.equal((await tx.commit()).accepted, true);
  } finally {
    mainPeer.close();
    workerPeer.close();
    channel.port1.close();
    channel.port2.close();
  }
});
