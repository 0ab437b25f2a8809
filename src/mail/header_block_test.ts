import assert from "node:assert/strict";
import fc from "fast-check";
import { HeaderBlockReader, headerFields } from "./header_block.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("HeaderBlockReader splits header and body wherever the chunks break", () => {
  const message = "Received: x\r\nFrom: a@b.example\r\n\tfolded\r\n\r\nbody\r\n\r\nmore\r\n";
  fc.assert(fc.property(fc.array(fc.nat(message.length), { maxLength: 6 }), (cuts) => {
    const points = [...new Set([0, ...cuts, message.length])].sort((a, b) => a - b);
    const reader = new HeaderBlockReader();
    let body = "";
    for (let i = 1; i < points.length; i++) {
      body += decoder.decode(reader.push(encoder.encode(message.slice(points[i - 1], points[i])))!);
    }
    assert.equal(body, "body\r\n\r\nmore\r\n");
    assert.equal(
      decoder.decode(reader.header()),
      "Received: x\r\nFrom: a@b.example\r\n\tfolded\r\n",
    );
    assert.equal(
      decoder.decode(reader.raw()),
      "Received: x\r\nFrom: a@b.example\r\n\tfolded\r\n\r\n",
    );
    assert.deepEqual(reader.fields("from"), ["a@b.example\tfolded"]);
  }));
});

Deno.test("HeaderBlockReader reports a header block over its limit and holds nothing", () => {
  const reader = new HeaderBlockReader(100);
  assert.deepEqual(reader.push(encoder.encode(`X: ${"a".repeat(90)}\r\n`)), new Uint8Array(0));
  assert.equal(reader.push(encoder.encode(`Y: ${"b".repeat(20)}\r\n\r\nbody`)), null);
  assert.equal(reader.overflow, true);
  assert.equal(reader.header().length, 0);
});

Deno.test("headerFields unfolds and matches names case-insensitively", () => {
  const block = encoder.encode("FROM: one\r\nSubject: s\r\nfrom :\r\n two\r\n");
  assert.deepEqual(headerFields(block, "From"), ["one", "two"]);
});
