import assert from "node:assert/strict";
import { join } from "node:path";
import { type Envelope, newQueueId, syncDirectory } from "../mail/mod.ts";
import { Spool, SpoolFullError } from "./spool.ts";
import { encodeState, readState } from "./state.ts";

const encoder = new TextEncoder();

function envelope(): Envelope {
  return {
    v: 1,
    id: newQueueId(),
    from: "alice@example.com",
    recipients: ["bob@example.net"],
    receivedAt: new Date().toISOString(),
    client: { address: "127.0.0.1", helo: "test" },
  };
}

async function withSpool(
  fn: (spool: Spool, dir: string) => Promise<void>,
  syncDir?: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spool-test-" });
  try {
    await fn(await Spool.open(dir, { syncDirectory: syncDir }), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

Deno.test("spool: a commit whose directory fsync fails leaves nothing in queue/", async () => {
  let failNext = true;
  await withSpool(async (spool, dir) => {
    const writer = spool.begin(envelope());
    writer.write(encoder.encode("Subject: x\r\n\r\nbody\r\n"));
    await assert.rejects(writer.commit({ state: encodeState(stateFor()) }), /EIO/);
    assert.deepEqual(await names(join(dir, "queue")), [], "no message, no state");
    assert.deepEqual(await names(join(dir, "tmp")), []);
    // The next commit syncs afresh and succeeds.
    const second = spool.begin(envelope());
    second.write(encoder.encode("Subject: y\r\n\r\nbody\r\n"));
    await second.commit();
    assert.deepEqual(await spool.list(), [second.id]);
  }, (path) => {
    if (failNext) {
      failNext = false;
      return Promise.reject(new Error("EIO"));
    }
    return syncDirectory(path);
  });
});

Deno.test("spool: a full disk is a SpoolFullError", async () => {
  await withSpool(async (spool) => {
    const writer = spool.begin(envelope());
    writer.write(encoder.encode("Subject: x\r\n\r\nbody\r\n"));
    const error = await writer.commit().catch((e) => e);
    assert.ok(error instanceof SpoolFullError);
    assert.deepEqual(await spool.list(), []);
  }, () => Promise.reject(Object.assign(new Error("No space left on device"), { code: "ENOSPC" })));
});

Deno.test("spool: the state committed with a message is there before the message", async () => {
  let seen: { message: boolean; state: boolean; committing: boolean } | null = null;
  let spoolRef: Spool | null = null;
  let id = "";
  await withSpool(async (spool) => {
    spoolRef = spool;
    const writer = spool.begin(envelope());
    id = writer.id;
    writer.write(encoder.encode("Subject: x\r\n\r\nbody\r\n"));
    await writer.commit({ state: encodeState(stateFor()) });
    assert.ok(seen, "the directory was synced");
    assert.deepEqual(seen, { message: true, state: true, committing: true });
    assert.equal(spool.committing.size, 0);
    assert.deepEqual(Object.keys((await readState(spool, id))!.done), ["done@example.net"]);
  }, async (path) => {
    // Inside the commit, when the message has been renamed into queue/.
    const spool = spoolRef!;
    const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
    seen = {
      message: await exists(spool.messagePath(id)),
      state: await exists(spool.statePath(id)),
      committing: spool.committing.has(id),
    };
    await syncDirectory(path);
  });
});

function stateFor() {
  const at = new Date().toISOString();
  return {
    attempts: 1,
    nextAttempt: at,
    done: {
      "done@example.net": {
        recipient: "done@example.net",
        status: "delivered" as const,
        reply: "250 ok",
      },
    },
  };
}
