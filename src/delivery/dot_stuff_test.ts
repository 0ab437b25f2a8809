import assert from "node:assert/strict";
import fc from "fast-check";
import { dotStuff, DotStuffer } from "./dot_stuff.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function stuff(text: string): string {
  return dec.decode(dotStuff(enc.encode(text)));
}

/** Encodes `data` cut at the given offsets, concatenating every output. */
function stuffInParts(data: Uint8Array, cuts: number[]): Uint8Array {
  const stuffer = new DotStuffer(4);
  const out: number[] = [];
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    if (cut < at || cut > data.length) continue;
    out.push(...stuffer.push(data.subarray(at, cut)));
    at = cut;
  }
  out.push(...stuffer.push(data.subarray(at), true));
  return Uint8Array.from(out);
}

Deno.test("dotStuff doubles a dot at the start of every line, and only there", () => {
  assert.equal(stuff(".\r\n"), "..\r\n.\r\n");
  assert.equal(stuff("a\r\n.b\r\n..c\r\nd.e\r\n"), "a\r\n..b\r\n...c\r\nd.e\r\n.\r\n");
  assert.equal(stuff(".start"), "..start\r\n.\r\n");
});

Deno.test("dotStuff closes unterminated content with CRLF before the final dot", () => {
  assert.equal(stuff("no newline"), "no newline\r\n.\r\n");
  assert.equal(stuff("ends\r\n"), "ends\r\n.\r\n");
  assert.equal(stuff(""), ".\r\n");
  assert.equal(stuff("\r\n"), "\r\n.\r\n");
});

Deno.test("dotStuff turns bare LF and bare CR into CRLF (no smuggled end of data)", () => {
  assert.equal(stuff("a\nb"), "a\r\nb\r\n.\r\n");
  assert.equal(stuff("a\n.\nb"), "a\r\n..\r\nb\r\n.\r\n");
  assert.equal(stuff("a\r.\rb"), "a\r\n..\r\nb\r\n.\r\n");
  assert.equal(stuff("a\r\n.\nb"), "a\r\n..\r\nb\r\n.\r\n");
  assert.equal(stuff("a\n\r\nb"), "a\r\n\r\nb\r\n.\r\n");
  assert.equal(stuff("a\r\rb"), "a\r\n\r\nb\r\n.\r\n");
});

Deno.test("DotStuffer handles line ends and dots split across chunks", () => {
  const s = new DotStuffer();
  // Each result is a view into a reused buffer: decode it before the next push.
  const parts = [
    dec.decode(s.push(enc.encode("line\r"))),
    dec.decode(s.push(enc.encode("\n."))),
    dec.decode(s.push(enc.encode("dot\r\n"))),
    dec.decode(s.push(enc.encode("."))),
    dec.decode(s.push(enc.encode(""), true)),
  ];
  // The LF after a CR that ended the previous chunk is the same line end.
  assert.equal(parts.join(""), "line\r\n..dot\r\n..\r\n.\r\n");
});

Deno.test("DotStuffer output is the same for every way of cutting the input", () => {
  const data = enc.encode(".a\r\n.\r\n\n.\r.b\rc\r\n..\r\n");
  const whole = dotStuff(data);
  for (let i = 0; i <= data.length; i++) {
    for (let j = i; j <= data.length; j++) {
      assert.deepEqual(stuffInParts(data, [i, j]), whole, `cut at ${i},${j}`);
    }
  }
});

Deno.test("DotStuffer refuses data after the end and starts again after reset", () => {
  const s = new DotStuffer();
  assert.equal(dec.decode(s.push(enc.encode("x"), true)), "x\r\n.\r\n");
  assert.throws(() => s.push(enc.encode("y")), /already ended/);
  s.reset();
  assert.equal(dec.decode(s.end()), ".\r\n");
  s.reset();
  assert.equal(dec.decode(s.push(enc.encode(".y"), true)), "..y\r\n.\r\n");
});

Deno.test("DotStuffer grows its buffer for chunks larger than it", () => {
  const s = new DotStuffer(8);
  const big = enc.encode(".\n".repeat(1000));
  assert.equal(dec.decode(s.push(big, true)), "..\r\n".repeat(1000) + ".\r\n");
});

/** Reverses the encoding the way a receiving server does. */
function unstuff(wire: Uint8Array): string {
  const text = dec.decode(wire);
  assert.ok(text.endsWith(".\r\n"));
  const body = text.slice(0, -3);
  if (body === "") return "";
  assert.ok(body.endsWith("\r\n"), "content must end with CRLF");
  return body.slice(0, -2).split("\r\n").map((l) => l.startsWith(".") ? l.slice(1) : l).join(
    "\n",
  );
}

Deno.test("DotStuffer round-trips any content through a receiver (property)", () => {
  const piece = fc.constantFrom(".", "\r", "\n", "\r\n", "a", "..", "x.y", "\u00e9");
  fc.assert(
    fc.property(
      fc.array(piece, { maxLength: 40 }),
      fc.array(fc.nat(80), { maxLength: 6 }),
      (pieces, cuts) => {
        const text = pieces.join("");
        const data = enc.encode(text);
        const wire = stuffInParts(data, cuts);
        assert.deepEqual(wire, dotStuff(data));
        const wireText = dec.decode(wire);
        // Every CR is followed by LF and every LF preceded by CR.
        assert.equal(wireText.replace(/\r\n/g, "").search(/[\r\n]/), -1);
        // The only end-of-data marker is the last one.
        const marker = wireText.indexOf("\r\n.\r\n");
        assert.ok(marker === -1 || marker === wireText.length - 5);
        const normalized = text.replace(/\r\n|\r|\n/g, "\n");
        const expected = normalized.endsWith("\n") ? normalized.slice(0, -1) : normalized;
        assert.equal(unstuff(wire), expected);
      },
    ),
    { numRuns: 500 },
  );
});
