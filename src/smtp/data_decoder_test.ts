import { deepStrictEqual, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { DataDecoder } from "./data_decoder.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Decoded {
  /** Unstuffed message bytes emitted before the end mark. */
  message: string;
  /** Whether the end mark was found. */
  done: boolean;
  /** Bytes after the end mark (left for the next command). */
  rest: string;
  bareLf: boolean;
}

/** The raw message bytes of the last {@link decode} call. */
let lastBytes = new Uint8Array();

/** Feeds `chunks` in order, stopping at the end mark as the line reader does. */
function decode(chunks: (string | Uint8Array)[]): Decoded {
  const out: Uint8Array[] = [];
  const d = new DataDecoder((bytes) => out.push(bytes.slice()));
  let rest = "";
  let done = false;
  for (const chunk of chunks) {
    const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
    if (done) {
      rest += decoder.decode(bytes);
      continue;
    }
    const result = d.push(bytes);
    if (result.done) {
      done = true;
      rest += decoder.decode(bytes.subarray(result.consumed));
    } else {
      strictEqual(result.consumed, bytes.length);
    }
  }
  const total = out.reduce((n, b) => n + b.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const b of out) {
    joined.set(b, offset);
    offset += b.length;
  }
  lastBytes = joined;
  return { message: decoder.decode(joined), done, rest, bareLf: d.sawBareLf };
}

/** Every way to cut `text` into two chunks, plus one byte per chunk. */
function splits(text: string): string[][] {
  const ways: string[][] = [[text], text.split("")];
  for (let i = 0; i <= text.length; i++) ways.push([text.slice(0, i), text.slice(i)]);
  return ways;
}

Deno.test("DataDecoder: a simple message ends at CRLF.CRLF and keeps its final CRLF", () => {
  deepStrictEqual(decode(["Subject: x\r\n\r\nbody\r\n.\r\n"]), {
    message: "Subject: x\r\n\r\nbody\r\n",
    done: true,
    rest: "",
    bareLf: false,
  });
});

Deno.test("DataDecoder: an empty message is just the dot line", () => {
  deepStrictEqual(decode([".\r\n"]), { message: "", done: true, rest: "", bareLf: false });
});

Deno.test("DataDecoder: the end mark is found when split at every position", () => {
  const wire = "Subject: s\r\n\r\nline one\r\n..stuffed\r\nlast\r\n.\r\nQUIT\r\n";
  for (const chunks of splits(wire)) {
    deepStrictEqual(
      decode(chunks),
      {
        message: "Subject: s\r\n\r\nline one\r\n.stuffed\r\nlast\r\n",
        done: true,
        rest: "QUIT\r\n",
        bareLf: false,
      },
      JSON.stringify(chunks),
    );
  }
});

Deno.test("DataDecoder: CRLF.CRLF split across three chunks at every pair of positions", () => {
  const wire = "a\r\n.\r\nNEXT";
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const chunks = [wire.slice(0, i), wire.slice(i, j), wire.slice(j)];
      deepStrictEqual(
        decode(chunks),
        { message: "a\r\n", done: true, rest: "NEXT", bareLf: false },
        JSON.stringify(chunks),
      );
    }
  }
});

Deno.test("DataDecoder: dot-unstuffing removes exactly one leading dot per line", () => {
  const cases: [string, string][] = [
    ["..\r\n.\r\n", ".\r\n"],
    ["...\r\n.\r\n", "..\r\n"],
    ["..x\r\n.\r\n", ".x\r\n"],
    [".x\r\n.\r\n", "x\r\n"], // a lone dot before text is dropped (RFC 5321 4.5.2)
    ["a.b\r\n.\r\n", "a.b\r\n"],
    ["a\r\n. \r\n.\r\n", "a\r\n \r\n"],
    ["..\r\n..\r\n.\r\n", ".\r\n.\r\n"],
  ];
  for (const [wire, message] of cases) {
    for (const chunks of splits(wire)) {
      const result = decode(chunks);
      strictEqual(result.message, message, JSON.stringify(chunks));
      strictEqual(result.done, true);
    }
  }
});

Deno.test("DataDecoder: a dot line followed by CR but not LF is data, not the end", () => {
  for (const chunks of splits(".\rx\r\n.\r\n")) {
    const result = decode(chunks);
    strictEqual(result.message, "\rx\r\n", JSON.stringify(chunks));
    strictEqual(result.done, true);
  }
  for (const chunks of splits(".\r\r\n.\r\n")) {
    strictEqual(decode(chunks).message, "\r\r\n", JSON.stringify(chunks));
  }
});

Deno.test("DataDecoder: LF.CRLF, CRLF.LF and CR.CR never end the data (smuggling)", () => {
  for (const wire of ["a\n.\r\nb", "a\r\n.\nb", "a\r.\rb", "a\n.\nb", "a\r\n.b\r\n"]) {
    for (const chunks of splits(wire)) {
      const result = decode(chunks);
      strictEqual(result.done, false, `${JSON.stringify(chunks)} ended the data`);
    }
  }
  const smuggled = decode(["x\r\nhi\n.\r\nMAIL FROM:<a@b>\r\n.\r\n"]);
  strictEqual(smuggled.done, true);
  strictEqual(smuggled.message, "x\r\nhi\n.\r\nMAIL FROM:<a@b>\r\n");
  strictEqual(smuggled.bareLf, true);
});

Deno.test("DataDecoder: bare LF anywhere is flagged, CRLF alone is not", () => {
  for (
    const wire of ["a\nb\r\n.\r\n", "\n.\r\n\r\n.\r\n", "a\r\n\n.\r\n.\r\n", "a\r\n.\n\r\n.\r\n"]
  ) {
    strictEqual(decode([wire]).bareLf, true, JSON.stringify(wire));
  }
  strictEqual(decode(["a\r\n\r\nb\r\n.\r\n"]).bareLf, false);
  strictEqual(decode(["bare CR\rinside\r\n.\r\n"]).bareLf, false);
});

Deno.test("DataDecoder: every byte value passes through unchanged", () => {
  const body = new Uint8Array(256 * 3);
  for (let i = 0; i < body.length; i++) body[i] = i % 256;
  // Make it well-formed CRLF lines: replace bare CR/LF with CRLF pairs where they occur.
  const wire: number[] = [];
  for (const b of body) {
    if (b === 10 || b === 13) wire.push(13, 10);
    else wire.push(b);
  }
  wire.push(13, 10);
  const tail = [46, 13, 10];
  const bytes = new Uint8Array([...wire, ...tail]);
  const out: number[] = [];
  const d = new DataDecoder((chunk) => out.push(...chunk));
  for (let i = 0; i < bytes.length; i += 7) {
    const result = d.push(bytes.subarray(i, Math.min(i + 7, bytes.length)));
    if (result.done) break;
  }
  deepStrictEqual(out, wire);
});

Deno.test("DataDecoder: emits sub-arrays of the input without copying", () => {
  const chunk = encoder.encode("hello\r\nworld\r\n.\r\n");
  const seen: Uint8Array[] = [];
  const d = new DataDecoder((bytes) => seen.push(bytes));
  strictEqual(d.push(chunk).done, true);
  strictEqual(seen.length, 1);
  strictEqual(seen[0].buffer, chunk.buffer);
});

Deno.test("DataDecoder: stuff, split anywhere, decode gives the message back (property)", () => {
  // Lines of arbitrary bytes without CR/LF, often starting with dots.
  const line = fc.oneof(
    fc.uint8Array({ maxLength: 12 }).map((b) => b.filter((x) => x !== 10 && x !== 13)),
    fc.constantFrom(".", "..", ". ", ".x", "").map((t) => encoder.encode(t)),
  );
  fc.assert(
    fc.property(
      fc.array(line, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (lines, cuts) => {
        const crlf = [13, 10];
        const message = lines.flatMap((l) => [...l, ...crlf]);
        const wire = new Uint8Array([
          ...lines.flatMap((l) => [...(l[0] === 46 ? [46] : []), ...l, ...crlf]),
          46,
          13,
          10,
          ...encoder.encode("NOOP\r\n"),
        ]);
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let prev = 0;
        for (const p of [...points, wire.length]) {
          chunks.push(wire.subarray(prev, p));
          prev = p;
        }
        const result = decode(chunks);
        strictEqual(result.done, true);
        strictEqual(result.rest, "NOOP\r\n");
        strictEqual(result.bareLf, false);
        deepStrictEqual(lastBytes, new Uint8Array(message));
      },
    ),
    { numRuns: 500 },
  );
});
