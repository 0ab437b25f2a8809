import assert from "node:assert/strict";
import fc from "fast-check";
import { configure, getLogger, type LogRecord, reset } from "@logtape/logtape";
import { jsonFormatter } from "./logger.ts";
import { batchedSink } from "./log_sink.ts";
import { cachedTemplate, compileTemplate } from "./message_template.ts";

/** The formatter as it was before the fast path: LogTape's parsed message, one object, JSON. */
function referenceFormatter(record: LogRecord): string {
  const safeJson = (value: unknown) => {
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return String(value);
    }
  };
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    message += i % 2 === 0 || typeof part === "string" ? String(part) : safeJson(part);
  }
  return safeJson({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level.toUpperCase(),
    logger: record.category.join("."),
    message,
    ...record.properties,
  }) + "\n";
}

/**
 * Logs each call through real LogTape into a batched sink (as the relay does), and returns
 * each record's line from jsonFormatter and from the reference, both taken inside the sink.
 */
async function formatBoth(
  calls: { template: string; properties: Record<string, unknown> }[],
): Promise<{ actual: string; expected: string }[]> {
  const out: { actual: string; expected: string }[] = [];
  const formatter = (record: LogRecord) => {
    out.push({ actual: jsonFormatter(record), expected: referenceFormatter(record) });
    return "";
  };
  await configure({
    reset: true,
    sinks: { test: batchedSink(formatter, { writeSync: (bytes) => bytes.length }) },
    loggers: [
      { category: ["relay"], lowestLevel: "debug", sinks: ["test"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    const logger = getLogger(["relay", "test"]);
    for (const call of calls) logger.info(call.template, call.properties);
  } finally {
    await reset();
  }
  return out;
}

Deno.test("jsonFormatter: the relay's own lines are byte for byte what the object form gave", async () => {
  const lines = await formatBoth([
    {
      template: "{id}: accepted from={from} rcpts={count} size={size} user={user}",
      properties: {
        id: "q1",
        from: "a@example.com",
        count: 2,
        size: 1024,
        user: "alice@example.com",
        session: "s1",
      },
    },
    {
      template: "{id}: to=<{rcpt}> via {via} status=delivered ({reply})",
      properties: { id: "q1", rcpt: "b@example.net", via: "smtp", reply: '250 2.0.0 "ok" é' },
    },
    { template: "disconnect from [{ip}] {counts}", properties: { ip: "192.0.2.7", counts: "x" } },
    { template: "stopped", properties: {} },
    { template: "{{literal}} and }} {missing}", properties: { when: new Date(0) } },
    { template: "odd {toJSON}", properties: { a: 1, toJSON: () => "whole" } },
  ]);
  for (const { actual, expected } of lines) assert.equal(actual, expected);
  assert.equal(
    lines[0].actual.replace(/"@timestamp":"[^"]+"/, '"@timestamp":"T"'),
    '{"@timestamp":"T","level":"INFO","logger":"relay.test",' +
      '"message":"q1: accepted from=a@example.com rcpts=2 size=1024 user=alice@example.com",' +
      '"id":"q1","from":"a@example.com","count":2,"size":1024,"user":"alice@example.com",' +
      '"session":"s1"}\n',
  );
});

Deno.test("jsonFormatter: any template and properties give the same line as the object form", async () => {
  const key = fc.constantFrom(
    "a",
    "b",
    "id",
    "level",
    "message",
    "logger",
    "@timestamp",
    "0",
    "7x",
    "a.b",
    " a ",
    "*",
    "",
    "constructor",
    "toJSON",
    "q?",
  );
  const value = fc.oneof(
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.constant(() => 1),
    fc.constant(new Date(86_400_000)),
    fc.constant({ toJSON: (k: string) => `json:${k}` }),
    fc.constant({ big: 1n }),
    fc.array(fc.oneof(fc.string(), fc.integer())),
    fc.dictionary(fc.constantFrom("x", "y", "password"), fc.string()),
  );
  const template = fc.array(
    fc.oneof(
      fc.string(),
      key.map((k) => `{${k}}`),
      fc.constantFrom("{", "}", "{{", "}}", "{a", "b}", "{a.b}", "{ a }"),
    ),
  ).map((parts) => parts.join(""));
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ template, properties: fc.dictionary(key, value) }), {
        maxLength: 20,
      }),
      async (calls) => {
        for (const { actual, expected } of await formatBoth(calls)) {
          assert.equal(actual, expected);
        }
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("jsonFormatter: a record LogTape did not build from a template (a worker's) keeps its message", () => {
  const record: LogRecord = {
    category: ["relay", "smtp"],
    level: "warning",
    message: ["rendered ", "in the worker", ""],
    rawMessage: "rendered {}", // a tagged template's strings joined, as session_worker.ts does
    timestamp: 0,
    properties: { worker: 2 },
  };
  assert.equal(jsonFormatter(record), referenceFormatter(record));
  assert.match(jsonFormatter(record), /"message":"rendered in the worker"/);
});

Deno.test("cachedTemplate: the cached parts are those of a fresh parse, and odd templates fall back", () => {
  for (
    const template of [
      "{id}: to=<{rcpt}> via {via} status=delivered ({reply})",
      "no placeholders",
      "",
      "{{escaped}} {a}}} }}",
      "unclosed {a",
    ]
  ) {
    assert.deepEqual(cachedTemplate(template), compileTemplate(template));
    assert.equal(cachedTemplate(template), cachedTemplate(template), "one object per template");
  }
  assert.deepEqual(compileTemplate("{id}: to=<{rcpt}>"), {
    texts: ["", ": to=<", ">"],
    keys: ["id", "rcpt"],
  });
  assert.deepEqual(compileTemplate("{{x}} {a}}}"), { texts: ["{x} ", "}"], keys: ["a"] });
  for (const template of ["{*}", "{user.name}", "{list[0]}", "{ padded }", "{}", "{a?.b}"]) {
    assert.equal(compileTemplate(template), null, template);
  }
});
