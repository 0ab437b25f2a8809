import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { batchedSink, type LogOutput } from "./log_sink.ts";
import { until } from "../../tests/support/until.ts";

const decoder = new TextDecoder();

function record(text: string): LogRecord {
  return {
    category: ["relay", "test"],
    level: "info",
    message: [text],
    rawMessage: text,
    timestamp: Date.now(),
    properties: {},
  };
}

const lineFormatter = (r: LogRecord) => `${r.message[0]}\n`;

/** An output that records each write; `short` makes it accept at most that many bytes per call. */
function recordingOutput(short = Infinity) {
  const writes: string[] = [];
  const output: LogOutput = {
    writeSync: (bytes) => {
      const n = Math.min(bytes.length, short);
      writes.push(decoder.decode(bytes.subarray(0, n)));
      return n;
    },
  };
  return { output, writes, text: () => writes.join("") };
}

Deno.test("batched log sink: many records go out in one write, in order, after the interval", async () => {
  const out = recordingOutput();
  using sink = batchedSink(lineFormatter, out.output, { flushIntervalMs: 20 });
  const expected = Array.from({ length: 200 }, (_, i) => `line ${i}\n`).join("");
  for (let i = 0; i < 200; i++) sink(record(`line ${i}`));
  assert.equal(out.writes.length, 0, "a log call does not write");
  await until("the batch", () => out.writes.length > 0, 2000);
  assert.deepEqual(out.writes, [expected]);
});

Deno.test("batched log sink: a full batch is written at once, the rest waits", () => {
  const out = recordingOutput();
  using sink = batchedSink(lineFormatter, out.output, { flushIntervalMs: 60_000, batchBytes: 27 });
  for (let i = 0; i < 5; i++) sink(record(`record ${i}`)); // 9 characters each
  assert.deepEqual(out.writes, ["record 0\nrecord 1\nrecord 2\n"]);
  sink.flush();
  assert.deepEqual(out.writes.slice(1), ["record 3\nrecord 4\n"]);
});

Deno.test("batched log sink: disposing writes what is still buffered, across short writes", () => {
  const out = recordingOutput(5);
  const sink = batchedSink(lineFormatter, out.output, { flushIntervalMs: 60_000 });
  sink(record("starting"));
  sink(record("stopped"));
  assert.equal(out.text(), "");
  sink[Symbol.dispose]();
  assert.equal(out.text(), "starting\nstopped\n");
});

Deno.test("batched log sink: an output that throws does not throw into the caller", () => {
  using sink = batchedSink(lineFormatter, {
    writeSync: () => {
      throw new Deno.errors.BrokenPipe("closed");
    },
  }, { batchBytes: 1 });
  sink(record("lost, quietly"));
});

Deno.test("batched log sink: Deno.exit, the end of the program and an uncaught error write the buffer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_log_sink_" });
  try {
    const script = `${dir}/program.ts`;
    await Deno.writeTextFile(
      script,
      `import { batchedSink, stderrOutput } from ${
        JSON.stringify(import.meta.resolve("./log_sink.ts"))
      };
const sink = batchedSink((r) => r.message[0] + "\\n", stderrOutput, { flushIntervalMs: 60_000 });
sink({ category: [], level: "info", message: ["the last line"], rawMessage: "", timestamp: 0, properties: {} });
if (Deno.args[0] === "exit") Deno.exit(3);
if (Deno.args[0] === "throw") throw new Error("boom");
`,
    );
    for (const [how, code] of [["exit", 3], ["end", 0], ["throw", 1]] as const) {
      const started = performance.now();
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-read", script, how],
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(out.code, code, how);
      assert.match(decoder.decode(out.stderr), /^the last line\n/, how);
      // The 60 s flush timer does not keep the process alive.
      assert.ok(performance.now() - started < 30_000, how);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
