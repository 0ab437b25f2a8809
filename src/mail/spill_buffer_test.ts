import assert from "node:assert/strict";
import { join } from "node:path";
import { SpillBuffer } from "./spill_buffer.ts";

async function collect(buffer: SpillBuffer): Promise<number[]> {
  const out: number[] = [];
  for await (const chunk of buffer.read()) out.push(...chunk);
  return out;
}

Deno.test("SpillBuffer gives back every byte in order, from memory or from its file, and removes the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const small = new SpillBuffer(join(dir, "small"), 100);
    small.write(new Uint8Array([1, 2, 3]));
    assert.equal(small.drain(), undefined);
    assert.deepEqual(await collect(small), [1, 2, 3]);
    await small.discard();

    const path = join(dir, "large");
    const large = new SpillBuffer(path, 100);
    const expected: number[] = [];
    for (let i = 0; i < 50; i++) {
      const chunk = new Uint8Array(37).fill(i);
      large.write(chunk);
      expected.push(...chunk);
      await large.drain();
    }
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(await collect(large), expected);
    await large.discard();
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
