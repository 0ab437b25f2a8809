import assert from "node:assert/strict";
import { join } from "node:path";
import { type Envelope, newQueueId, syncDirectory } from "../mail/mod.ts";
import { BODY_FILE_BYTES, encodeSpoolFile, Spool, SpoolFullError } from "./spool.ts";
import type { DeliveryState } from "./state.ts";
import { canMount, fill, mountTmpfs } from "../../tests/support/tmpfs.ts";

const encoder = new TextEncoder();

function envelope(id = newQueueId()): Envelope {
  return {
    v: 1,
    id,
    from: "alice@example.com",
    recipients: ["bob@example.net", "done@example.net"],
    receivedAt: new Date().toISOString(),
    client: { address: "127.0.0.1", helo: "test" },
  };
}

async function withSpool(
  fn: (spool: Spool, dir: string) => Promise<void>,
  syncDir?: (dir: string) => Promise<void>,
  dir?: string,
): Promise<void> {
  dir ??= await Deno.makeTempDir({ prefix: "spool-test-" });
  const spool = await Spool.open(dir, { syncDirectory: syncDir });
  try {
    await fn(spool, dir);
  } finally {
    await spool.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}

function stateFor(at = new Date()): DeliveryState {
  return {
    attempts: 1,
    nextAttempt: new Date(at.getTime() + 60_000).toISOString(),
    done: {
      "done@example.net": {
        recipient: "done@example.net",
        status: "delivered" as const,
        reply: "250 ok",
      },
    },
  };
}

/** A message of `size` bytes whose content says where each byte is. */
function message(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = 65 + (i % 26);
  return data;
}

Deno.test("spool: a small message is committed in its row and handed back in memory", async () => {
  await withSpool(async (spool, dir) => {
    const writer = spool.begin(envelope());
    const data = message(3000);
    // The caller's buffers are copied, never transferred away from it.
    writer.write(data.subarray(0, 1000));
    writer.write(data.subarray(1000));
    await writer.commit();
    assert.equal(data.length, 3000, "the caller's bytes are untouched");
    const committed = writer.takeCommitted();
    assert.deepEqual(committed?.data, data);
    assert.equal(writer.takeCommitted(), null, "given out once");
    assert.deepEqual(await spool.list(), [writer.id]);
    assert.deepEqual((await spool.read(writer.id)).data, data);
    assert.equal(spool.reads, 1);
    assert.deepEqual(await names(join(dir, "bodies")), [], "no file for a small message");
    for (const file of ["spool.db", "spool.db-wal"]) {
      assert.equal((await Deno.stat(join(dir, file))).mode! & 0o777, 0o600, `${file}: owner only`);
    }
    await spool.remove(writer.id);
    assert.equal(await spool.has(writer.id), false);
  });
});

Deno.test("spool: a large message streams to its body file, which goes with its row", async () => {
  await withSpool(async (spool, dir) => {
    const writer = spool.begin(envelope());
    const data = message(BODY_FILE_BYTES * 3 + 17);
    for (let at = 0; at < data.length; at += 16 * 1024) {
      writer.write(data.subarray(at, at + 16 * 1024));
      await writer.drain();
    }
    // Streaming: most of it is in the file before the commit.
    const streamed = (await Deno.stat(join(dir, "bodies", writer.id))).size;
    assert.ok(streamed >= BODY_FILE_BYTES * 2, `${streamed} bytes in the file before the commit`);
    await writer.commit();
    assert.equal(writer.takeCommitted(), null, "not held in memory");
    assert.deepEqual((await spool.read(writer.id)).data, data);
    assert.deepEqual(spool.entries().map((e) => [e.id, e.size]), [[writer.id, data.length]]);
    await spool.remove(writer.id);
    assert.deepEqual(await names(join(dir, "bodies")), []);
  });
});

Deno.test("spool: a commit whose body-folder fsync fails leaves nothing behind", async () => {
  let failNext = true;
  await withSpool(async (spool, dir) => {
    const writer = spool.begin(envelope());
    writer.write(message(BODY_FILE_BYTES + 1));
    await assert.rejects(writer.commit({ state: stateFor() }), /EIO/);
    assert.deepEqual(await spool.list(), [], "no message, no state");
    assert.deepEqual(await names(join(dir, "bodies")), []);
    // The next commit syncs afresh and succeeds.
    const second = spool.begin(envelope());
    second.write(message(BODY_FILE_BYTES + 1));
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

Deno.test("spool: the state committed with a message is in the same row", async () => {
  await withSpool(async (spool) => {
    const writer = spool.begin(envelope());
    writer.write(encoder.encode("Subject: x\r\n\r\nbody\r\n"));
    const state = stateFor();
    await writer.commit({ state });
    assert.deepEqual(spool.readState(writer.id), state);
    assert.deepEqual(spool.schedule(), [{ id: writer.id, next: Date.parse(state.nextAttempt) }]);
    // A state update of a message that is gone says so.
    await spool.remove(writer.id);
    assert.equal(await spool.writeState(writer.id, state), false);
  });
});

Deno.test("spool: commits in one group fail alone: a duplicate id, not its neighbours", async () => {
  await withSpool(async (spool) => {
    const first = spool.begin(envelope());
    first.write(encoder.encode("one\r\n"));
    await first.commit();
    // Sent together: they share a transaction.
    const writers = Array.from({ length: 10 }, () => spool.begin(envelope()));
    const duplicate = spool.begin(envelope(first.id));
    for (const w of [...writers, duplicate]) w.write(encoder.encode("two\r\n"));
    const results = await Promise.allSettled([...writers, duplicate].map((w) => w.commit()));
    assert.deepEqual(results.map((r) => r.status), [...writers.map(() => "fulfilled"), "rejected"]);
    assert.equal((await spool.list()).length, 11);
    assert.deepEqual((await spool.read(first.id)).data, encoder.encode("one\r\n"));
  });
});

Deno.test("spool: queue ids are checked before any path or query is built", async () => {
  await withSpool(async (spool) => {
    assert.throws(() => spool.begin(envelope("../../etc/passwd")), /not a queue id/);
    await assert.rejects(spool.read("../x"), /not a queue id/);
    assert.equal(await spool.has("../x"), false);
    assert.equal(spool.readState("../x"), null);
    assert.equal(await spool.deleteMessage("../x"), false);
    await assert.rejects(spool.remove("../x"), /not a queue id/);
  });
});

Deno.test("spool: a spool of the old file format is imported once, its files removed after", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-legacy-" });
  await Deno.mkdir(join(dir, "queue"), { recursive: true });
  await Deno.mkdir(join(dir, "flush"), { recursive: true });
  const fresh = envelope();
  const tried = envelope();
  const large = envelope();
  const bytes = message(2000);
  const big = message(BODY_FILE_BYTES + 5000);
  await Deno.writeFile(join(dir, "queue", `${fresh.id}.msg`), encodeSpoolFile(fresh, bytes));
  await Deno.writeFile(join(dir, "queue", `${tried.id}.msg`), encodeSpoolFile(tried, bytes));
  const state = stateFor();
  await Deno.writeTextFile(join(dir, "queue", `${tried.id}.state`), JSON.stringify(state));
  await Deno.writeFile(join(dir, "queue", `${large.id}.msg`), encodeSpoolFile(large, big));
  await Deno.writeTextFile(join(dir, "queue", `${fresh.id}.state.tmp`), "{torn");
  await Deno.writeFile(join(dir, "flush", "ALL"), new Uint8Array());
  await withSpool(
    async (spool) => {
      assert.deepEqual([...spool.imported].sort(), [fresh.id, tried.id, large.id].sort());
      assert.deepEqual(await spool.list(), [fresh.id, tried.id, large.id].sort());
      assert.deepEqual(await names(join(dir, "queue")), [], "imported files are removed");
      assert.deepEqual(await names(join(dir, "flush")), []);
      assert.deepEqual(await spool.read(fresh.id), { envelope: fresh, data: bytes });
      assert.equal(spool.readState(fresh.id), null);
      assert.deepEqual(spool.readState(tried.id), state);
      assert.deepEqual(
        spool.schedule().find((s) => s.id === tried.id)?.next,
        Date.parse(state.nextAttempt),
      );
      assert.deepEqual((await spool.read(large.id)).data, big);
      assert.deepEqual(await names(join(dir, "bodies")), [large.id]);
      assert.deepEqual(spool.requests().map((r) => [r.kind, r.id]), [["retry", "ALL"]]);

      // A crash after the import committed but before its files were removed:
      // the files are there again; the messages are not imported twice.
      await spool.writeState(fresh.id, state);
      await Deno.writeFile(join(dir, "queue", `${fresh.id}.msg`), encodeSpoolFile(fresh, bytes));
      assert.deepEqual(await spool.importLegacy(), []);
      assert.deepEqual(await names(join(dir, "queue")), []);
      assert.deepEqual(spool.readState(fresh.id), state, "the newer state is kept");
      assert.equal((await spool.list()).length, 3);
    },
    undefined,
    dir,
  );
});

Deno.test("spool: at open, body files without a message (a crash mid-DATA) are removed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-orphan-" });
  const kept = envelope();
  {
    const spool = await Spool.open(dir);
    const writer = spool.begin(kept);
    writer.write(message(BODY_FILE_BYTES + 1));
    await writer.commit();
    await spool.close();
  }
  const orphan = newQueueId();
  await Deno.writeFile(join(dir, "bodies", orphan), message(10));
  await withSpool(
    async (spool) => {
      assert.deepEqual(await names(join(dir, "bodies")), [kept.id]);
      assert.equal((await spool.read(kept.id)).data.length, BODY_FILE_BYTES + 1);
    },
    undefined,
    dir,
  );
});

Deno.test("spool: relay queue's own connection deletes beside the running writer, and tells it", async () => {
  await withSpool(async (spool, dir) => {
    const ids: string[] = [];
    for (const size of [100, BODY_FILE_BYTES + 1]) {
      const writer = spool.begin(envelope());
      writer.write(message(size));
      await writer.commit();
      ids.push(writer.id);
    }
    const cli = await Spool.attach(dir);
    try {
      assert.deepEqual(await cli.list(), ids);
      assert.equal(await cli.deleteMessage(ids[1]), true);
      await cli.requestRetry(ids[0]);
      assert.equal(await cli.deleteMessage(ids[1]), false);
    } finally {
      await cli.close();
    }
    assert.deepEqual(await spool.list(), [ids[0]]);
    assert.deepEqual(await names(join(dir, "bodies")), [], "the body file went with it");
    const requests = spool.requests();
    assert.deepEqual(requests.map((r) => [r.kind, r.id]), [["deleted", ids[1]], ["retry", ids[0]]]);
    await spool.requestsDone(requests[1].n);
    assert.deepEqual(spool.requests(), []);
    // The writer still commits after the other connection's writes.
    const writer = spool.begin(envelope());
    writer.write(message(10));
    await writer.commit();
    assert.equal(await spool.probe(), null);
  });
});

Deno.test("spool: attach without a spool database is NotFound", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-none-" });
  try {
    await assert.rejects(Spool.attach(dir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "spool: a full disk is a SpoolFullError and leaves nothing, for rows and body files",
  ignore: !canMount,
  async fn() {
    const disk = await mountTmpfs("2m", "spool-full-");
    const dir = disk.dir;
    try {
      const spool = await Spool.open(dir);
      try {
        const filler = await fill(join(dir, "filler"));
        for (const size of [1000, BODY_FILE_BYTES * 2]) {
          const writer = spool.begin(envelope());
          writer.write(message(size));
          const error = await writer.commit().catch((e) => e);
          assert.ok(error instanceof SpoolFullError, `${size} bytes: ${error}`);
        }
        assert.deepEqual(await spool.list(), []);
        assert.deepEqual(await names(join(dir, "bodies")), []);
        assert.match(String(await spool.probe()), /full|space/i, "not ready");
        await Deno.remove(filler);
        const writer = spool.begin(envelope());
        writer.write(message(1000));
        await writer.commit();
        assert.equal((await spool.list()).length, 1);
        assert.equal(await spool.probe(), null);
      } finally {
        await spool.close();
      }
    } finally {
      await disk.close();
    }
  },
});

Deno.test("spool: readiness fails once the writer is gone, and commits answer with an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spool-gone-" });
  try {
    const spool = await Spool.open(dir);
    assert.equal(await spool.probe(), null);
    await spool.close();
    assert.match(String(await spool.probe()), /spool closed/);
    const writer = spool.begin(envelope());
    writer.write(message(10));
    await assert.rejects(writer.commit(), /spool closed/);
    assert.deepEqual(await spool.list(), [], "reads still work on a closed spool");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spool: a writer thread that dies is started again; what it committed stays", async () => {
  await withSpool(async (spool) => {
    const commit = async (size: number) => {
      const writer = spool.begin(envelope());
      writer.write(message(size));
      await writer.commit();
      return writer.id;
    };
    const before = await commit(100);
    await spool.crashWriterForTest();
    assert.equal(await spool.probe(), null, "ready again");
    const after = await commit(200);
    assert.deepEqual(await spool.list(), [before, after].sort());
    assert.deepEqual((await spool.read(after)).data, message(200));
  });
});

Deno.test("spool: a removal shares a new message's fsync; alone it commits without one", async () => {
  await withSpool(async (spool) => {
    const commit = async () => {
      const writer = spool.begin(envelope());
      writer.write(message(100));
      await writer.commit();
      return writer.id;
    };
    const first = await commit();
    assert.deepEqual(spool.commits, { synced: 1, unsynced: 0 });

    // Nothing durable in its group: the removal commits without an fsync.
    await spool.remove(first);
    assert.equal(await spool.has(first), false);
    assert.deepEqual(spool.commits, { synced: 1, unsynced: 1 });

    // A new message's commit and a removal asked for together: one transaction, one fsync.
    const second = await commit();
    const writer = spool.begin(envelope());
    writer.write(message(100));
    await Promise.all([writer.commit(), spool.remove(second)]);
    assert.deepEqual(spool.commits, { synced: 3, unsynced: 1 });
    assert.deepEqual(await spool.list(), [writer.id]);
  });
});
