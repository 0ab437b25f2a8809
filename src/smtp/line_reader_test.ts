import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ByteStream } from "./byte_stream.ts";
import { LineReader, type LineResult } from "./line_reader.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A ByteStream that hands out scripted chunks, then end of stream. */
class ScriptedStream implements ByteStream {
  #chunks: Uint8Array[];
  reads = 0;
  readonly tls = null;
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 1;
  closed = false;

  constructor(chunks: (string | Uint8Array)[]) {
    this.#chunks = chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c);
  }

  read(): Promise<Uint8Array | null> {
    this.reads++;
    return Promise.resolve(this.#chunks.shift() ?? null);
  }

  write(): Promise<void> {
    return Promise.resolve();
  }

  upgrade(): Promise<void> {
    return Promise.reject(new Error("not supported"));
  }

  setReadDeadline(): void {}

  close(): void {
    this.closed = true;
  }

  interrupt(): void {}
}

/** Reads every line until EOF, as text (or the result kind). */
async function readAll(reader: LineReader, max: number): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const result: LineResult = await reader.readLine(max);
    if (result.kind === "eof") return out;
    out.push(result.kind === "line" ? decoder.decode(result.line) : "<too long>");
  }
}

Deno.test("LineReader: CRLF and bare LF both end a command line", async () => {
  const reader = new LineReader(new ScriptedStream(["EHLO a\r\nNOOP\nRSET\r\n"]));
  deepStrictEqual(await readAll(reader, 100), ["EHLO a", "NOOP", "RSET"]);
});

Deno.test("LineReader: lines split across chunks at every position", async () => {
  const wire = "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n";
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const reader = new LineReader(
        new ScriptedStream([wire.slice(0, i), wire.slice(i, j), wire.slice(j)]),
      );
      deepStrictEqual(
        await readAll(reader, 100),
        ["MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"],
        `${i}/${j}`,
      );
    }
  }
});

Deno.test("LineReader: a partial line at end of stream is dropped", async () => {
  const reader = new LineReader(new ScriptedStream(["NOOP\r\nQUI"]));
  deepStrictEqual(await readAll(reader, 100), ["NOOP"]);
});

Deno.test("LineReader: hasBufferedLine tells whether the client pipelined", async () => {
  const reader = new LineReader(new ScriptedStream(["NOOP\r\nNOOP\r\nNO", "OP\r\n"]));
  strictEqual(reader.hasBufferedLine(), false);
  await reader.readLine(100);
  strictEqual(reader.hasBufferedLine(), true);
  await reader.readLine(100);
  strictEqual(reader.hasBufferedLine(), false);
  strictEqual(reader.hasBuffered(), true);
  deepStrictEqual(await readAll(reader, 100), ["NOOP"]);
});

Deno.test("LineReader: the limit is exact, CRLF or bare LF, in one chunk or split", async () => {
  const max = 16;
  for (const end of ["\r\n", "\n"]) {
    const ok = "x".repeat(max);
    const long = "y".repeat(max + 1);
    const wire = `${ok}${end}${long}${end}after${end}`;
    for (let i = 0; i <= wire.length; i++) {
      const reader = new LineReader(new ScriptedStream([wire.slice(0, i), wire.slice(i)]));
      deepStrictEqual(
        await readAll(reader, max),
        [ok, "<too long>", "after"],
        `${JSON.stringify(end)} split at ${i}`,
      );
    }
  }
});

Deno.test("LineReader: an over-long line is skipped to its end, however long", async () => {
  const chunk = "z".repeat(64 * 1024);
  const chunks = Array.from({ length: 16 }, () => chunk);
  const stream = new ScriptedStream([...chunks, "\r\nNOOP\r\n"]);
  const reader = new LineReader(stream);
  deepStrictEqual(await reader.readLine(2048), { kind: "too_long" });
  strictEqual(stream.reads, 17);
  deepStrictEqual(await readAll(reader, 2048), ["NOOP"]);
});

Deno.test("LineReader: discard drops pipelined input (STARTTLS)", async () => {
  const reader = new LineReader(new ScriptedStream(["STARTTLS\r\nNOOP\r\n", "EHLO x\r\n"]));
  strictEqual(
    decoder.decode((await reader.readLine(100) as { line: Uint8Array }).line),
    "STARTTLS",
  );
  reader.discard();
  strictEqual(reader.hasBuffered(), false);
  deepStrictEqual(await readAll(reader, 100), ["EHLO x"]);
});

Deno.test("LineReader: readData takes bytes buffered with DATA and leaves what follows", async () => {
  const fresh = new LineReader(
    new ScriptedStream(["DATA\r\nSubject: x\r\n\r\n..dot\r\n", "body\r\n.\r\nQUIT\r\n"]),
  );
  strictEqual(decoder.decode((await fresh.readLine(100) as { line: Uint8Array }).line), "DATA");
  const parts: string[] = [];
  const result = await fresh.readData((bytes) => parts.push(decoder.decode(bytes)));
  deepStrictEqual(result, { complete: true, bareLf: false });
  strictEqual(parts.join(""), "Subject: x\r\n\r\n.dot\r\nbody\r\n");
  deepStrictEqual(await readAll(fresh, 100), ["QUIT"]);
});

Deno.test("LineReader: readData reports an incomplete message at end of stream", async () => {
  const reader = new LineReader(new ScriptedStream(["Subject: x\r\n\r\nhalf"]));
  const parts: string[] = [];
  deepStrictEqual(await reader.readData((b) => parts.push(decoder.decode(b))), {
    complete: false,
    bareLf: false,
  });
  strictEqual(parts.join(""), "Subject: x\r\n\r\nhalf");
});

Deno.test("LineReader: readData flags a bare LF and still finds the end", async () => {
  const reader = new LineReader(new ScriptedStream(["a\nb\r\n.\r\nNOOP\r\n"]));
  deepStrictEqual(await reader.readData(() => {}), { complete: true, bareLf: true });
  deepStrictEqual(await readAll(reader, 100), ["NOOP"]);
});

Deno.test("LineReader: readData awaits the sink's drain between chunks", async () => {
  const stream = new ScriptedStream(["one\r\n", "two\r\n", "three\r\n.\r\n"]);
  const reader = new LineReader(stream);
  const events: string[] = [];
  await reader.readData(
    (bytes) => events.push(`data:${decoder.decode(bytes).trim()}`),
    () => {
      events.push("drain");
      return new Promise((resolve) => setTimeout(resolve, 1));
    },
  );
  deepStrictEqual(events, ["data:one", "drain", "data:two", "drain", "data:three"]);
});
