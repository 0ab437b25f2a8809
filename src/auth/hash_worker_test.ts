import assert from "node:assert/strict";
import { reuseWasmInstances } from "./hash_worker.ts";
import { HashPool } from "./hash_pool.ts";

// (module (memory (export "memory") 1)
//   (func (export "Hash_SetMemorySize") (param i32))
//   (func (export "Hash_GetBuffer") (result i32) (i32.const 0)))
const name = (text: string) => [text.length, ...new TextEncoder().encode(text)];
const SIZING_MODULE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version 1
  0x01,
  0x09,
  0x02,
  0x60,
  0x01,
  0x7f,
  0x00,
  0x60,
  0x00,
  0x01,
  0x7f, // types: (i32)->(), ()->i32
  0x03,
  0x03,
  0x02,
  0x00,
  0x01, // functions 0 and 1
  0x05,
  0x03,
  0x01,
  0x00,
  0x01, // one memory, 1 page
  0x07,
  0x30,
  0x03, // three exports
  ...name("memory"),
  0x02,
  0x00,
  ...name("Hash_SetMemorySize"),
  0x00,
  0x00,
  ...name("Hash_GetBuffer"),
  0x00,
  0x01,
  0x0a,
  0x09,
  0x02,
  0x02,
  0x00,
  0x0b,
  0x04,
  0x00,
  0x41,
  0x00,
  0x0b, // bodies
]);
// The smallest valid module: the magic number and version 1.
const EMPTY_MODULE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

Deno.test("reuseWasmInstances gives one instance per memory-sizing module, fresh ones to others", async () => {
  const wasm = {
    instantiate: WebAssembly.instantiate,
    Module: WebAssembly.Module,
  } as unknown as typeof WebAssembly;
  reuseWasmInstances(wasm);
  const sizing = await WebAssembly.compile(SIZING_MODULE);
  const first = await wasm.instantiate(sizing);
  assert.ok(first instanceof WebAssembly.Instance);
  const memory = new Uint8Array((first.exports.memory as WebAssembly.Memory).buffer);
  memory.fill(7);
  // The same instance again, its memory zeroed as a fresh one's would be.
  assert.equal(await wasm.instantiate(sizing), first);
  assert.ok(memory.every((byte) => byte === 0));
  assert.notEqual(await wasm.instantiate(await WebAssembly.compile(SIZING_MODULE)), first);
  const plain = await WebAssembly.compile(EMPTY_MODULE);
  assert.notEqual(await wasm.instantiate(plain), await wasm.instantiate(plain));
  const fromBytes = await wasm.instantiate(SIZING_MODULE);
  assert.ok(fromBytes.instance instanceof WebAssembly.Instance);
});

Deno.test("a worker reusing its argon2 instance hashes and verifies passwords in turn", async () => {
  // One worker, so every job runs on the same (reused) argon2 and BLAKE2b instances,
  // with two memory sizes so that a reused memory is both grown and used smaller.
  const pool = new HashPool({ size: 1 });
  try {
    const big = { memoryKib: 4096, iterations: 2, parallelism: 1 };
    const small = { memoryKib: 1024, iterations: 1, parallelism: 1 };
    const a = await pool.hash("first secret", big);
    const b = await pool.hash("second secret", small);
    const c = await pool.hash("first secret", small);
    assert.notEqual(a, c);
    for (let round = 0; round < 2; round++) {
      assert.equal(await pool.verify("first secret", a, false), true);
      assert.equal(await pool.verify("second secret", a, false), false);
      assert.equal(await pool.verify("second secret", b, false), true);
      assert.equal(await pool.verify("first secret", b, false), false);
      assert.equal(await pool.verify("first secret", c, false), true);
    }
    assert.equal(pool.stats.workers, 1);
  } finally {
    await pool.close();
  }
});
