import assert from "node:assert/strict";
import { PeerClosedError, RemoteError, RpcPeer } from "./rpc.ts";

interface Left {
  add(a: number, b: number): Promise<number>;
  fail(): Promise<never>;
  note(text: string): void;
}
type Right = Record<never, never>;

function pair(left: Left) {
  const channel = new MessageChannel();
  channel.port1.start();
  channel.port2.start();
  const server = new RpcPeer<Right, Left>(channel.port1, left);
  const client = new RpcPeer<Left, Right>(channel.port2, {});
  return {
    client,
    close() {
      server.close();
      client.close();
      channel.port1.close();
      channel.port2.close();
    },
  };
}

Deno.test("rpc: calls resolve in order, notices arrive between them, errors keep name, code and port", async () => {
  const notes: string[] = [];
  const { client, close } = pair({
    add: (a, b) => Promise.resolve(a + b),
    fail: () => {
      const error = new Error("cannot listen") as Error & { code: string; port: number };
      error.code = "EADDRINUSE";
      error.port = 8587;
      return Promise.reject(error);
    },
    note: (text) => void notes.push(text),
  });
  try {
    client.notify("note", ["first"]);
    const sums = await Promise.all([client.call("add", 1, 2), client.call("add", 3, 4)]);
    assert.deepEqual(sums, [3, 7]);
    assert.deepEqual(notes, ["first"]);
    const error = await client.call("fail").catch((e) => e);
    assert.ok(error instanceof RemoteError);
    assert.equal(error.message, "cannot listen");
    assert.equal(error.code, "EADDRINUSE");
    assert.equal(error.port, 8587);
  } finally {
    close();
  }
});

Deno.test("rpc: a call still waiting when the peer closes rejects with PeerClosedError", async () => {
  const { client, close } = pair({
    add: () => new Promise(() => {}),
    fail: () => Promise.reject(new Error("x")),
    note: () => {},
  });
  const waiting = client.call("add", 1, 1);
  close();
  await assert.rejects(waiting, PeerClosedError);
  await assert.rejects(client.call("add", 1, 1), PeerClosedError);
});
