import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ByteReader,
  formatReply,
  IoDeadline,
  ReplyReader,
  SmtpConnectionError,
  SmtpProtocolError,
  SmtpReplyError,
  SmtpTimeoutError,
} from "./reply_reader.ts";

const enc = new TextEncoder();

/** Serves the given chunks, one per read (split further if `p` is smaller), then EOF. */
function chunks(...parts: (string | Uint8Array)[]): ByteReader & { reads: number } {
  const queue = parts.map((p) => typeof p === "string" ? enc.encode(p) : p);
  const source = {
    reads: 0,
    read(p: Uint8Array): Promise<number | null> {
      source.reads++;
      const next = queue.shift();
      if (next === undefined) return Promise.resolve(null);
      const n = Math.min(p.length, next.length);
      p.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return Promise.resolve(n);
    },
  };
  return source;
}

/** Splits text into one-byte chunks: the hardest way to receive it. */
function bytewise(text: string): Uint8Array[] {
  return [...enc.encode(text)].map((b) => Uint8Array.of(b));
}

Deno.test("ReplyReader parses a multi-line reply and keeps each line's text", async () => {
  const reader = new ReplyReader(
    chunks("250-mx.example.com greets you\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 PIPELINING\r\n"),
  );
  assert.deepEqual(await reader.read(), {
    code: 250,
    lines: ["mx.example.com greets you", "SIZE 1000", "8BITMIME", "PIPELINING"],
  });
});

Deno.test("ReplyReader gives the same reply when it arrives one byte per read", async () => {
  const text = "550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 no such user\r\n";
  const reader = new ReplyReader(chunks(...bytewise(text)));
  assert.deepEqual(await reader.read(), {
    code: 550,
    enhanced: "5.1.1",
    lines: ["5.1.1 first", "5.1.1 second", "5.1.1 no such user"],
  });
});

Deno.test("ReplyReader takes an enhanced code only when its class matches the reply", async () => {
  const reader = new ReplyReader(
    chunks("250 2.0.0 ok\r\n250 5.1.1 odd\r\n452 4.5.3 too many\r\n250 2.1.5\r\n250 2.1.50x\r\n"),
  );
  assert.equal((await reader.read()).enhanced, "2.0.0");
  assert.equal((await reader.read()).enhanced, undefined);
  assert.equal((await reader.read()).enhanced, "4.5.3");
  assert.equal((await reader.read()).enhanced, "2.1.5");
  assert.equal((await reader.read()).enhanced, undefined);
});

Deno.test("ReplyReader accepts a bare code and LF-only line ends", async () => {
  const reader = new ReplyReader(chunks("250\r\n221-bye\n221 now\n"));
  assert.deepEqual(await reader.read(), { code: 250, lines: [""] });
  assert.deepEqual(await reader.read(), { code: 221, lines: ["bye", "now"] });
});

Deno.test("ReplyReader keeps pipelined replies from one read for the next calls", async () => {
  const source = chunks("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n354 go\r\n");
  const reader = new ReplyReader(source);
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await reader.read()).code);
  assert.deepEqual(codes, [250, 250, 550, 354]);
  assert.equal(source.reads, 1);
  assert.equal(reader.buffered, 0);
});

Deno.test("ReplyReader reports bytes left over after a reply", async () => {
  const reader = new ReplyReader(chunks("220 go ahead\r\n250 injected\r\n"));
  await reader.read();
  assert.equal(reader.buffered, "250 injected\r\n".length);
  assert.throws(() => reader.setSource(chunks()), SmtpProtocolError);
});

Deno.test("ReplyReader rejects malformed lines", async (t) => {
  for (
    const bad of [
      "hello\r\n",
      "25\r\n",
      "2500 x\r\n",
      "250x\r\n",
      "199 too low\r\n",
      "600 too high\r\n",
      "\r\n",
      "250-a\r\n251 b\r\n",
      "25a ok\r\n",
    ]
  ) {
    await t.step(JSON.stringify(bad), async () => {
      const reader = new ReplyReader(chunks(bad));
      await assert.rejects(reader.read(), SmtpProtocolError);
    });
  }
});

Deno.test("ReplyReader error for a changed code names both codes", async () => {
  const reader = new ReplyReader(chunks("250-a\r\n550 b\r\n"));
  await assert.rejects(reader.read(), /from 250 to 550/);
});

Deno.test("ReplyReader stops an endless multi-line reply at the cap", async () => {
  let served = 0;
  const line = enc.encode("250-" + "x".repeat(96) + "\r\n");
  const endless: ByteReader = {
    read(p) {
      const n = Math.min(p.length, line.length);
      p.set(line.subarray(0, n));
      served += n;
      return Promise.resolve(n);
    },
  };
  const reader = new ReplyReader(endless, { maxReplyBytes: 4096 });
  await assert.rejects(reader.read(), /reply larger than 4096 bytes/);
  assert.ok(served <= 4096 + line.length, `read ${served} bytes`);
});

Deno.test("ReplyReader stops a single endless line at the cap without growing past it", async () => {
  let served = 0;
  const endless: ByteReader = {
    read(p) {
      p.fill(0x41);
      served += p.length;
      return Promise.resolve(p.length);
    },
  };
  const reader = new ReplyReader(endless, { maxReplyBytes: 10_000, bufferSize: 512 });
  await assert.rejects(reader.read(), SmtpProtocolError);
  assert.ok(served <= 10_002, `read ${served} bytes`);
});

Deno.test("ReplyReader accepts a reply exactly at the cap", async () => {
  const reply = "250 " + "y".repeat(96 - 6) + "\r\n";
  assert.equal(reply.length, 96);
  const reader = new ReplyReader(chunks(reply), { maxReplyBytes: 96, bufferSize: 16 });
  assert.equal((await reader.read()).lines[0].length, 90);
  const over = new ReplyReader(chunks(reply), { maxReplyBytes: 95, bufferSize: 16 });
  await assert.rejects(over.read(), SmtpProtocolError);
});

Deno.test("ReplyReader reports EOF before and in the middle of a reply", async () => {
  await assert.rejects(
    new ReplyReader(chunks()).read(),
    (e) => e instanceof SmtpConnectionError && /closed by the server/.test(e.message),
  );
  await assert.rejects(
    new ReplyReader(chunks("250-first\r\n")).read(),
    (e) => e instanceof SmtpConnectionError && /middle of a reply/.test(e.message),
  );
  await assert.rejects(new ReplyReader(chunks("250 no line end")).read(), /middle of a reply/);
});

Deno.test("ReplyReader wraps read errors as connection errors", async () => {
  const failing: ByteReader = {
    read: () => Promise.reject(new Deno.errors.ConnectionReset("reset by peer")),
  };
  await assert.rejects(
    new ReplyReader(failing).read(),
    (e) => e instanceof SmtpConnectionError && /ConnectionReset/.test(e.message),
  );
});

Deno.test("ReplyReader times out, and stays failed afterwards", async () => {
  let settle: (n: number | null) => void = () => {};
  const silent: ByteReader = {
    read: () => new Promise((resolve) => settle = resolve),
  };
  const reader = new ReplyReader(silent);
  const started = performance.now();
  await assert.rejects(
    reader.read(50),
    (e) => e instanceof SmtpTimeoutError && e.timeoutMs === 50 && e.phase === "reply",
  );
  assert.ok(performance.now() - started >= 45);
  await assert.rejects(reader.read(50), SmtpTimeoutError);
  settle(null);
});

Deno.test("ReplyReader's deadline covers the whole reply, not each read", async () => {
  // A line trickling in every 20 ms never finishes within 100 ms.
  let last: Promise<number> = Promise.resolve(0);
  const slow: ByteReader = {
    read(p) {
      last = new Promise((resolve) =>
        setTimeout(() => {
          p[0] = 0x32;
          resolve(1);
        }, 20)
      );
      return last;
    },
  };
  const reader = new ReplyReader(slow);
  await assert.rejects(reader.read(100), SmtpTimeoutError);
  // The read still pending when the deadline struck ends before the test does (sanitizers).
  await last;
});

Deno.test("ReplyReader: timed reads in time leave one lazy timer, gone with dispose", async () => {
  let timers = 0;
  const deadline = new IoDeadline({
    timers: {
      setTimeout: (callback, ms) => (timers++, setTimeout(callback, ms)),
      clearTimeout: (handle) => clearTimeout(handle as number),
    },
  });
  const reader = new ReplyReader(chunks(...bytewise("250 a\r\n".repeat(50))), { deadline });
  for (let i = 0; i < 50; i++) assert.equal((await reader.read(60_000)).code, 250);
  assert.equal(timers, 1, "one timer for 50 replies of 7 reads each");
  // The sanitizer fails this test if the armed timer outlives it.
  deadline.dispose();
  const own = new ReplyReader(chunks("250 ok\r\n"));
  assert.equal((await own.read(60_000)).code, 250);
  own.dispose();
});

Deno.test("IoDeadline: each operation has its own phase and limit on the connection's one timer", async () => {
  const deadline = new IoDeadline();
  try {
    deadline.start("write", 5000);
    assert.equal(await deadline.race(Promise.resolve(7)), 7);
    deadline.finish();
    // No limit: the pending operation is returned as it is.
    deadline.start("reply", 0);
    const pending = Promise.resolve(1);
    assert.equal(deadline.race(pending), pending);
    deadline.start("reply", 40);
    const started = performance.now();
    await assert.rejects(
      deadline.race(new Promise(() => {})),
      (e) => e instanceof SmtpTimeoutError && e.phase === "reply" && e.timeoutMs === 40,
    );
    assert.ok(performance.now() - started >= 39);
    // The operation stays timed out until the next one starts.
    await assert.rejects(deadline.race(Promise.resolve(2)), SmtpTimeoutError);
    deadline.start("write", 5000);
    assert.equal(await deadline.race(Promise.resolve(3)), 3);
  } finally {
    deadline.dispose();
  }
});

Deno.test("SmtpReplyError classifies 4xx as transient and 5xx as permanent", () => {
  const transient = new SmtpReplyError("RCPT TO", { code: 451, lines: ["4.3.0 later"] });
  assert.equal(transient.transient, true);
  assert.equal(transient.permanent, false);
  const permanent = new SmtpReplyError("RCPT TO", { code: 550, lines: ["5.1.1 unknown"] });
  assert.equal(permanent.permanent, true);
  assert.equal(permanent.transient, false);
  assert.equal(permanent.message, "RCPT TO failed: 550 5.1.1 unknown");
  assert.equal(formatReply({ code: 250, lines: ["a", "b"] }), "250 a / b");
});

Deno.test("ReplyReader parses any reply split at any points (property)", async () => {
  const line = fc.stringMatching(/^[ -~]{0,40}$/);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 200, max: 599 }),
      fc.array(line, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }),
      async (code, lines, cuts) => {
        const text = lines.map((l, i) => `${code}${i === lines.length - 1 ? " " : "-"}${l}\r\n`)
          .join("");
        const bytes = enc.encode(text);
        const parts: Uint8Array[] = [];
        let at = 0;
        for (const cut of cuts) {
          if (at >= bytes.length) break;
          parts.push(bytes.subarray(at, Math.min(bytes.length, at + cut)));
          at += cut;
        }
        if (at < bytes.length) parts.push(bytes.subarray(at));
        const reply = await new ReplyReader(chunks(...parts), { bufferSize: 16 }).read();
        assert.equal(reply.code, code);
        assert.deepEqual(reply.lines, lines);
      },
    ),
    { numRuns: 200 },
  );
});
