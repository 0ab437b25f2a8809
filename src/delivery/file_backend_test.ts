import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { denoFs, type DurableFs, type Envelope } from "../mail/mod.ts";
import { FileBackend } from "./file_backend.ts";

const ENVELOPE: Envelope = {
  v: 1,
  id: "19C2F3A4B5C0123456789",
  from: "alice@example.com",
  recipients: ["bob@example.net"],
  receivedAt: "2026-11-29T12:00:00.000Z",
  client: { address: "127.0.0.1", helo: "test" },
};

/** The real file system, recording the names renamed into place, in order. */
function recordingFs(renamed: string[], failOn?: RegExp): DurableFs {
  return {
    writeFile: async (path, data) => {
      if (failOn?.test(path)) {
        await Deno.writeFile(path, data.subarray(0, 1));
        throw new Error("No space left on device (os error 28)");
      }
      await denoFs.writeFile(path, data);
    },
    rename: async (from, to) => {
      await denoFs.rename(from, to);
      renamed.push(basename(to));
    },
    remove: (path) => denoFs.remove(path),
  };
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

Deno.test("FileBackend renames the .json into place before the .eml, so a seen .eml has its envelope", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_file_backend_" });
  try {
    const renamed: string[] = [];
    const backend = await FileBackend.open(dir, { fs: recordingFs(renamed) });
    const data = new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n");
    const outcomes = await backend.deliver(ENVELOPE, data, ENVELOPE.recipients);
    assert.equal(outcomes[0].status, "delivered");
    assert.deepEqual(renamed, [`${ENVELOPE.id}.json`, `${ENVELOPE.id}.eml`]);
    assert.deepEqual(await Deno.readFile(join(dir, `${ENVELOPE.id}.eml`)), data);
    const meta = JSON.parse(await Deno.readTextFile(join(dir, `${ENVELOPE.id}.json`)));
    assert.deepEqual(meta.recipients, ["bob@example.net"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileBackend leaves neither a .tmp nor a lone .json when the .eml cannot be written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_file_backend_" });
  try {
    const backend = await FileBackend.open(dir, { fs: recordingFs([], /\.eml\.tmp$/) });
    await assert.rejects(
      backend.deliver(ENVELOPE, new TextEncoder().encode("x\r\n"), ENVELOPE.recipients),
      /No space left/,
    );
    assert.deepEqual(await names(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
