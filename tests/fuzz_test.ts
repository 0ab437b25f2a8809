/**
 * Property tests for the code that reads untrusted bytes: the command
 * parser, the SASL decoders and the DATA dot-reader. Each property runs a
 * few hundred random cases; a failure prints the shrunk counterexample and
 * the seed to replay it (`fc.assert(..., { seed, path })`).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Command, parseCommand } from "../src/smtp/commands.ts";
import { DataDecoder } from "../src/smtp/data_decoder.ts";
import type { SaslMechanism, SaslStep } from "../src/sasl/mechanism.ts";
import { createPlain, decodePlain } from "../src/sasl/plain.ts";
import { createLogin } from "../src/sasl/login.ts";
import { createXoauth2, decodeXoauth2 } from "../src/sasl/xoauth2.ts";
import { createOAuthBearer, decodeOAuthBearer } from "../src/sasl/oauthbearer.ts";

const RUNS = { numRuns: 300 };
const encoder = new TextEncoder();

// --- parseCommand -----------------------------------------------------------

const VERBS = new Set<Command["verb"]>([
  "EHLO",
  "HELO",
  "STARTTLS",
  "AUTH",
  "MAIL",
  "RCPT",
  "DATA",
  "RSET",
  "NOOP",
  "QUIT",
  "VRFY",
  "HELP",
  "UNIMPLEMENTED",
  "FORBIDDEN",
  "UNKNOWN",
  "INVALID",
  "BAD_BYTES",
]);

const isString = (v: unknown): v is string => typeof v === "string";

/** Checks the shape a dispatcher relies on; returns a reason when it is wrong. */
function commandProblem(c: Command): string | null {
  if (!VERBS.has(c.verb)) return `unknown verb ${c.verb}`;
  switch (c.verb) {
    case "EHLO":
    case "HELO":
      return isString(c.domain) && c.domain !== "" && !/\s/.test(c.domain) ? null : "domain";
    case "AUTH":
      if (!isString(c.mechanism) || c.mechanism === "" || /[\s]/.test(c.mechanism)) {
        return "mechanism";
      }
      if (c.mechanism !== c.mechanism.toUpperCase()) return "mechanism case";
      return c.initial === null ||
          (isString(c.initial) && !/\s/.test(c.initial) && c.initial !== "")
        ? null
        : "initial";
    case "MAIL": {
      if (!isString(c.address) || /[<>\s]/.test(c.address)) return "sender";
      const { size, body, smtputf8 } = c.params;
      if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) return "size";
      if (body !== undefined && body !== "7BIT" && body !== "8BITMIME") return "body";
      if (smtputf8 !== undefined && smtputf8 !== true) return "smtputf8";
      return null;
    }
    case "RCPT":
      return isString(c.address) && c.address.includes("@") && !/[<>\s]/.test(c.address)
        ? null
        : "recipient";
    case "UNIMPLEMENTED":
    case "FORBIDDEN":
      return isString(c.name) && c.name !== "" ? null : "name";
    case "UNKNOWN":
      return isString(c.name) && c.name.length <= 32 ? null : "name";
    case "INVALID":
      if (!isString(c.name) || !isString(c.usage) || c.usage === "") return "invalid fields";
      return c.reply === undefined || ["parameter", "value", "address"].includes(c.reply)
        ? null
        : "reply";
    default:
      return null;
  }
}

function checkLine(line: Uint8Array): void {
  const command = parseCommand(line);
  const problem = commandProblem(command);
  assert.equal(problem, null, `${JSON.stringify(command)} from ${JSON.stringify([...line])}`);
}

Deno.test("fuzz: parseCommand never throws and returns a well-formed Command for any bytes", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), checkLine), RUNS);
});

const TOKENS = [
  "MAIL",
  "mail",
  "RCPT",
  "FROM:",
  "from:",
  "TO:",
  "<",
  ">",
  "<>",
  "<a@b.example>",
  "<@relay,@hop:u@d.example>",
  '<"quoted local"@d.example>',
  "<ü@bücher.example>",
  "@",
  ":",
  "=",
  "SIZE=",
  "SIZE=100",
  "SIZE=99999999999999999999",
  "BODY=8BITMIME",
  "BODY=7bit",
  "BODY=",
  "SMTPUTF8",
  "SMTPUTF8=yes",
  "NOTIFY=NEVER",
  "AUTH",
  "PLAIN",
  "LOGIN",
  "XOAUTH2",
  "dXNlcg==",
  "EHLO",
  "HELO",
  "STARTTLS",
  "DATA",
  "QUIT",
  "RSET",
  "NOOP",
  "VRFY",
  "BDAT",
  "GET",
  "Subject:",
  "host.example",
  "[127.0.0.1]",
  " ",
  "  ",
  "\t",
  "\x00",
  "\x7f",
  "\u00e9",
  "\ud83d\udce7",
];

Deno.test("fuzz: parseCommand on lines built from SMTP tokens", () => {
  const line = fc.array(fc.constantFrom(...TOKENS), { maxLength: 10 }).map((t) => t.join(""));
  const spaced = fc.array(fc.constantFrom(...TOKENS), { maxLength: 6 }).map((t) => t.join(" "));
  fc.assert(
    fc.property(fc.oneof(line, spaced), (text) => {
      checkLine(encoder.encode(text));
      // A well-formed MAIL keeps exactly the address between the brackets.
      const m = /^MAIL FROM:<([^<>\s]*)>$/i.exec(text);
      const command = parseCommand(encoder.encode(text));
      if (m && command.verb === "MAIL") {
        assert.ok(command.address === m[1] || m[1].startsWith("@"), JSON.stringify(command));
      }
    }),
    RUNS,
  );
});

// --- SASL -------------------------------------------------------------------

function checkStep(step: SaslStep): void {
  switch (step.type) {
    case "done":
      assert.ok(step.credentials.kind === "password" || step.credentials.kind === "bearer");
      if (step.credentials.kind === "password") {
        assert.ok(step.credentials.authcid !== "" && step.credentials.password !== "");
      } else {
        assert.ok(isString(step.credentials.token) && step.credentials.token !== "");
      }
      break;
    case "malformed":
      assert.ok(isString(step.message) && step.message !== "");
      break;
    case "challenge":
      assert.ok(step.challenge instanceof Uint8Array);
      break;
    default:
      assert.fail(`unknown step ${JSON.stringify(step)}`);
  }
}

const saslBytes = fc.oneof(
  fc.uint8Array({ maxLength: 120 }),
  // Structured enough to reach past the first checks.
  fc.array(
    fc.constantFrom(
      "\x00",
      "\x01",
      "user=",
      "auth=Bearer ",
      "auth=bearer abc.def-ghi",
      "n,a=",
      "n,,",
      "y,,",
      "p=x,,",
      "host=mail.example",
      "bob@example.com",
      "eyJhbGciOiJFUzI1NiJ9.e30.sig",
      '{"user":"a@b","authToken":"Bearer t"}',
      "{",
      "=",
      ",",
      "ü",
    ),
    { maxLength: 8 },
  ).map((t) => encoder.encode(t.join(""))),
);

Deno.test("fuzz: SASL decoders never throw and answer done, malformed or challenge", () => {
  fc.assert(
    fc.property(saslBytes, (bytes) => {
      checkStep(decodePlain(bytes));
      checkStep(decodeXoauth2(bytes));
      checkStep(decodeOAuthBearer(bytes));
    }),
    RUNS,
  );
});

Deno.test("fuzz: SASL mechanisms survive any sequence of responses", () => {
  const factories: (() => SaslMechanism)[] = [
    createPlain,
    createLogin,
    createXoauth2,
    createOAuthBearer,
  ];
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: factories.length - 1 }),
      fc.option(saslBytes),
      fc.array(saslBytes, { maxLength: 4 }),
      (which, initial, responses) => {
        const mechanism = factories[which]();
        let step = mechanism.start(initial);
        checkStep(step);
        for (const response of responses) {
          if (step.type !== "challenge") break;
          step = mechanism.next(response);
          checkStep(step);
        }
      },
    ),
    RUNS,
  );
});

Deno.test("fuzz: PLAIN gives back exactly the fields that were encoded", () => {
  const field = fc.string({ unit: "grapheme", maxLength: 20 }).map((s) => s.replaceAll("\0", ""));
  fc.assert(
    fc.property(field, field, field, (authzid, authcid, password) => {
      const step = decodePlain(encoder.encode(`${authzid}\0${authcid}\0${password}`));
      if (authcid === "" || password === "") {
        assert.equal(step.type, "malformed");
      } else {
        assert.deepEqual(step, {
          type: "done",
          credentials: { kind: "password", authzid, authcid, password },
        });
      }
    }),
    RUNS,
  );
});

// --- DATA dot-reader ----------------------------------------------------------

const CRLF = [13, 10];

/** A line's bytes: anything but LF, with dots and CRs made frequent. */
const lineBytes = fc.array(
  fc.oneof(
    { weight: 1, arbitrary: fc.constant(46) },
    { weight: 1, arbitrary: fc.constant(13) },
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 255 }).filter((b) => b !== 10) },
  ),
  { maxLength: 12 },
);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.slice(from, p)); // empty chunks included on purpose
    from = p;
  }
  return chunks;
}

Deno.test("fuzz: DataDecoder undoes dot-stuffing exactly and stops at CRLF.CRLF, any chunking", () => {
  fc.assert(
    fc.property(
      fc.array(lineBytes, { maxLength: 12 }),
      fc.uint8Array({ maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (lines, after, cuts) => {
        // The model: each line ends in CRLF; a leading dot is doubled on the wire.
        const body = concat(lines.map((l) => new Uint8Array([...l, ...CRLF])));
        const wire = concat([
          ...lines.map((l) => new Uint8Array([...(l[0] === 46 ? [46] : []), ...l, ...CRLF])),
          new Uint8Array([46, ...CRLF]),
          after,
        ]);
        const out: Uint8Array[] = [];
        const decoder = new DataDecoder((bytes) => out.push(bytes.slice()));
        const rest: Uint8Array[] = [];
        let done = false;
        for (const chunk of split(wire, cuts)) {
          if (done) {
            rest.push(chunk);
            continue;
          }
          const result = decoder.push(chunk);
          assert.ok(result.consumed >= 0 && result.consumed <= chunk.length);
          if (!result.done) assert.equal(result.consumed, chunk.length);
          done = result.done;
          if (done) rest.push(chunk.subarray(result.consumed));
        }
        assert.ok(done, "the end mark was found");
        assert.deepEqual(concat(out), body);
        assert.deepEqual(concat(rest), after, "bytes after the end mark are left alone");
        assert.equal(decoder.sawBareLf, false);
      },
    ),
    RUNS,
  );
});

Deno.test("fuzz: DataDecoder never ends early on a bare LF before the dot", () => {
  fc.assert(
    fc.property(
      fc.array(lineBytes, { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (lines, cuts) => {
        // `<LF>.<CRLF>` and `<LF>.<LF>` inside the data are smuggling attempts, not the end.
        const smuggled = new Uint8Array([10, 46, 13, 10, 46, 10]);
        const wire = concat([
          ...lines.map((l) => new Uint8Array([...(l[0] === 46 ? [46] : []), ...l, ...CRLF])),
          new Uint8Array([65]),
          smuggled,
          new Uint8Array([...CRLF, 46, ...CRLF]),
        ]);
        const decoder = new DataDecoder(() => {});
        const chunks = split(wire, cuts);
        let doneAt = -1;
        let consumedTotal = 0;
        for (const [i, chunk] of chunks.entries()) {
          const result = decoder.push(chunk);
          consumedTotal += result.consumed;
          if (result.done) {
            doneAt = i;
            break;
          }
        }
        assert.equal(consumedTotal, wire.length, "only the final CRLF.CRLF ends the data");
        assert.ok(doneAt >= 0);
        assert.equal(decoder.sawBareLf, true);
      },
    ),
    RUNS,
  );
});
