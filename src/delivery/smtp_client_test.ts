import assert from "node:assert/strict";
import {
  ehloReply,
  makeTestCertificates,
  type ScriptConn,
  type ScriptTlsOptions,
  serveScript,
  type TestCertificates,
} from "./_smtp_test_server.ts";
import {
  SmtpClient,
  type SmtpClientOptions,
  SmtpConnectionError,
  SmtpProtocolError,
  SmtpReplyError,
  SmtpTimeoutError,
} from "./smtp_client.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `client` against a server running `script`; fails the test if either
 * side fails, and always stops the server.
 */
async function withServer(
  script: (conn: ScriptConn) => Promise<void>,
  client: (options: SmtpClientOptions) => Promise<void>,
  tls?: ScriptTlsOptions,
): Promise<void> {
  const server = await serveScript(script, tls);
  try {
    await client({
      host: "127.0.0.1",
      port: server.port,
      security: "none",
      ehloName: "client.test",
      timeouts: { connect: 5000, command: 5000, data: 5000 },
    });
  } catch (clientError) {
    // A failed server-side assertion usually explains the client's error: prefer it.
    const serverError = await Promise.race([
      server.finished.then(() => undefined, (e) => e),
      sleep(200).then(() => undefined),
    ]);
    await server.close();
    if (serverError) {
      throw new Error(`server script failed: ${serverError}`, { cause: clientError });
    }
    throw clientError;
  }
  try {
    await server.finished;
  } finally {
    await server.close();
  }
}

/** Expects `expected` as the next line. */
async function expectLine(conn: ScriptConn, expected: string | RegExp): Promise<string> {
  const line = await conn.readLine();
  assert.ok(line !== null, `expected ${expected}, got EOF`);
  if (typeof expected === "string") assert.equal(line, expected);
  else assert.match(line, expected);
  return line;
}

/** Greeting + EHLO with the given extensions. */
async function hello(conn: ScriptConn, extensions: string[]): Promise<void> {
  await conn.write("220 test.example ESMTP\r\n");
  await expectLine(conn, "EHLO client.test");
  await conn.write(ehloReply(extensions));
}

async function bye(conn: ScriptConn): Promise<void> {
  await expectLine(conn, "QUIT");
  await conn.write("221 2.0.0 bye\r\n");
}

Deno.test("connect reads a multi-line greeting and parses the EHLO extensions", async () => {
  await withServer(async (conn) => {
    await conn.write("220-test.example ESMTP\r\n220 no UCE\r\n");
    await expectLine(conn, "EHLO client.test");
    await conn.write(ehloReply([
      "SIZE 10240000",
      "PIPELINING",
      "8BITMIME",
      "SMTPUTF8",
      "auth plain LOGIN XOAUTH2",
      "AUTH=LOGIN OAUTHBEARER",
      "ENHANCEDSTATUSCODES",
      "STARTTLS",
    ]));
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    assert.deepEqual(client.greeting, { code: 220, lines: ["test.example ESMTP", "no UCE"] });
    assert.deepEqual(Object.fromEntries(client.extensions), {
      "SIZE": ["10240000"],
      "PIPELINING": [],
      "8BITMIME": [],
      "SMTPUTF8": [],
      "AUTH": ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"],
      "ENHANCEDSTATUSCODES": [],
      "STARTTLS": [],
    });
    assert.equal(client.maxSize, 10240000);
    assert.equal(client.isTls, false);
    assert.equal(client.tlsInfo, undefined);
    const reply = await client.quit();
    assert.equal(reply?.code, 221);
    assert.equal(client.closed, true);
  });
});

Deno.test("EHLO refused with 5xx falls back to HELO, with no extensions", async () => {
  await withServer(async (conn) => {
    await conn.write("220 old.example\r\n");
    await expectLine(conn, "EHLO client.test");
    await conn.write("502 5.5.1 what?\r\n");
    await expectLine(conn, "HELO client.test");
    await conn.write("250 old.example\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    assert.equal(client.extensions.size, 0);
    await client.quit();
  });
});

Deno.test("a 4xx EHLO reply is an error, not a reason to try HELO", async () => {
  await withServer(async (conn) => {
    await conn.write("220 busy.example\r\n");
    await expectLine(conn, "EHLO client.test");
    await conn.write("421 4.3.2 shutting down\r\n");
    assert.equal(await conn.readToEnd(), "");
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect(options),
      (e) => e instanceof SmtpReplyError && e.transient && e.command === "EHLO",
    );
  });
});

Deno.test("a 554 greeting is a permanent SmtpReplyError and a 421 greeting a transient one", async () => {
  for (const [greeting, transient] of [["554 5.3.2 go away", false], ["421 4.3.2 busy", true]]) {
    await withServer(async (conn) => {
      await conn.write(`${greeting}\r\n`);
      assert.equal(await conn.readToEnd(), "");
    }, async (options) => {
      await assert.rejects(SmtpClient.connect(options), (e) => {
        assert.ok(e instanceof SmtpReplyError);
        assert.equal(e.transient, transient);
        assert.equal(e.permanent, !transient);
        assert.equal(e.command, "greeting");
        return true;
      });
    });
  }
});

Deno.test("with PIPELINING, MAIL + every RCPT + DATA arrive as one batch", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["PIPELINING", "SIZE 100000", "ENHANCEDSTATUSCODES"]);
    const batch = await conn.readChunk();
    assert.equal(
      batch,
      "MAIL FROM:<a@example.com> SIZE=10\r\nRCPT TO:<b@example.net>\r\n" +
        "RCPT TO:<nobody@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n",
    );
    await conn.write(
      "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 go\r\n",
    );
    assert.equal(dec.decode(await conn.readUntil("\r\n.\r\n")), "Subject: x\r\n.\r\n");
    await conn.write("250 2.0.0 queued as 42\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const result = await client.send({
      from: "a@example.com",
      to: ["b@example.net", "nobody@example.net", "c@example.net"],
      data: enc.encode("Subject: x"),
      params: { size: true },
    });
    assert.equal(result.outcome, "sent");
    assert.equal(result.pipelined, true);
    assert.deepEqual(result.recipients.map((r) => [r.address, r.accepted, r.reply?.enhanced]), [
      ["b@example.net", true, "2.1.5"],
      ["nobody@example.net", false, "5.1.1"],
      ["c@example.net", true, "2.1.5"],
    ]);
    assert.equal(result.data?.code, 354);
    assert.deepEqual(result.final, { code: 250, enhanced: "2.0.0", lines: ["2.0.0 queued as 42"] });
    await client.quit();
  });
});

Deno.test("without PIPELINING, each command waits for its reply", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["8BITMIME"]);
    for (
      const [command, reply] of [
        ["MAIL FROM:<a@example.com>", "250 ok"],
        ["RCPT TO:<b@example.net>", "250 ok"],
        ["RCPT TO:<c@example.net>", "250 ok"],
        ["DATA", "354 go"],
      ]
    ) {
      // A pipelining client writes the whole group in one write, which would arrive here
      // with the first command; so the command alone, and nothing after it, is the proof.
      assert.equal(await conn.readChunk(), `${command}\r\n`);
      assert.equal(conn.buffered(), 0, `data arrived before the reply to ${command}`);
      await conn.write(`${reply}\r\n`);
    }
    assert.equal(dec.decode(await conn.readUntil("\r\n.\r\n")), "hi\r\n.\r\n");
    await conn.write("250 queued\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const result = await client.send({
      from: "a@example.com",
      to: ["b@example.net", "c@example.net"],
      data: enc.encode("hi\r\n"),
    });
    assert.equal(result.outcome, "sent");
    assert.equal(result.pipelined, false);
    await client.quit();
  });
});

Deno.test("message data reaches the server dot-stuffed, CRLF-normalised, byte for byte", async () => {
  const received: string[] = [];
  await withServer(async (conn) => {
    await hello(conn, ["PIPELINING"]);
    for (let i = 0; i < 2; i++) {
      await conn.readUntil("DATA\r\n");
      await conn.write("250 ok\r\n250 ok\r\n354 go\r\n");
      received.push(dec.decode(await conn.readUntil("\r\n.\r\n")));
      await conn.write("250 queued\r\n");
    }
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const one = await client.send({
      from: "a@example.com",
      to: ["b@example.net"],
      data: enc.encode("Subject: t\n.leading\r\n..two\r\n.\r\nend"),
    });
    assert.equal(one.outcome, "sent");
    async function* parts() {
      for (const part of ["line\r", "\n.", "dot\r\n", "."]) yield enc.encode(part);
    }
    const two = await client.send({ from: "a@example.com", to: ["b@example.net"], data: parts() });
    assert.equal(two.outcome, "sent");
    await client.quit();
  });
  assert.deepEqual(received, [
    "Subject: t\r\n..leading\r\n...two\r\n..\r\nend\r\n.\r\n",
    "line\r\n..dot\r\n..\r\n.\r\n",
  ]);
});

Deno.test("a large message is streamed in several writes and arrives intact", async () => {
  const line = "0123456789".repeat(7) + "\r\n";
  const body = line.repeat(20_000) + ".last\r\n"; // ~1.4 MB
  let got = "";
  await withServer(async (conn) => {
    await hello(conn, ["PIPELINING"]);
    await conn.readUntil("DATA\r\n");
    await conn.write("250 ok\r\n250 ok\r\n354 go\r\n");
    got = dec.decode(await conn.readUntil("\r\n.\r\n"));
    await conn.write("250 queued\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const r = await client.send({ from: "a@x.test", to: ["b@y.test"], data: enc.encode(body) });
    assert.equal(r.outcome, "sent");
    await client.quit();
  });
  assert.equal(got.length, body.length + 1 + 3);
  assert.ok(got.endsWith("\r\n..last\r\n.\r\n"));
});

Deno.test("transient and permanent rejections are reported per stage", async (t) => {
  await t.step("all recipients refused, without pipelining: RSET, no DATA", async () => {
    await withServer(async (conn) => {
      await hello(conn, []);
      await expectLine(conn, "MAIL FROM:<a@example.com>");
      await conn.write("250 ok\r\n");
      await expectLine(conn, "RCPT TO:<b@example.net>");
      await conn.write("450 4.2.1 mailbox busy\r\n");
      await expectLine(conn, "RCPT TO:<c@example.net>");
      await conn.write("550 5.1.1 unknown\r\n");
      await expectLine(conn, "RSET");
      await conn.write("250 reset\r\n");
      await bye(conn);
    }, async (options) => {
      const client = await SmtpClient.connect(options);
      const r = await client.send({
        from: "a@example.com",
        to: ["b@example.net", "c@example.net"],
        data: enc.encode("x"),
      });
      assert.equal(r.outcome, "recipients-rejected");
      assert.equal(r.data, undefined);
      assert.deepEqual(r.recipients.map((x) => x.reply?.code), [450, 550]);
      await client.quit();
    });
  });

  await t.step("all recipients refused, pipelined, DATA refused: RSET", async () => {
    await withServer(async (conn) => {
      await hello(conn, ["PIPELINING"]);
      await conn.readUntil("DATA\r\n");
      await conn.write("250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n");
      await expectLine(conn, "RSET");
      await conn.write("250 reset\r\n");
      await bye(conn);
    }, async (options) => {
      const client = await SmtpClient.connect(options);
      const r = await client.send({ from: "a@x.test", to: ["b@y.test"], data: enc.encode("x") });
      assert.equal(r.outcome, "recipients-rejected");
      assert.equal(r.data?.code, 554);
      assert.equal(r.final, undefined);
      await client.quit();
    });
  });

  await t.step("all recipients refused but DATA got 354: empty message, then RSET", async () => {
    await withServer(async (conn) => {
      await hello(conn, ["PIPELINING"]);
      await conn.readUntil("DATA\r\n");
      await conn.write("250 ok\r\n550 5.1.1 unknown\r\n354 go anyway\r\n");
      await expectLine(conn, ".");
      await conn.write("554 5.5.1 no recipients\r\n");
      await expectLine(conn, "RSET");
      await conn.write("250 reset\r\n");
      await bye(conn);
    }, async (options) => {
      const client = await SmtpClient.connect(options);
      const r = await client.send({ from: "a@x.test", to: ["b@y.test"], data: enc.encode("x") });
      assert.equal(r.outcome, "recipients-rejected");
      await client.quit();
    });
  });

  await t.step("MAIL refused (4xx): RSET, and the connection stays usable", async () => {
    await withServer(async (conn) => {
      await hello(conn, []);
      await expectLine(conn, "MAIL FROM:<a@x.test>");
      await conn.write("452 4.3.1 spool full\r\n");
      await expectLine(conn, "RSET");
      await conn.write("250 reset\r\n");
      await expectLine(conn, "NOOP");
      await conn.write("250 ok\r\n");
      await bye(conn);
    }, async (options) => {
      const client = await SmtpClient.connect(options);
      const r = await client.send({ from: "a@x.test", to: ["b@y.test"], data: enc.encode("x") });
      assert.equal(r.outcome, "mail-rejected");
      assert.equal(r.mail.code, 452);
      assert.equal(r.recipients[0].reply, undefined);
      assert.equal((await client.noop()).code, 250);
      await client.quit();
    });
  });

  await t.step("final reply 451 after the data: message-rejected, transient", async () => {
    await withServer(async (conn) => {
      await hello(conn, ["PIPELINING"]);
      await conn.readUntil("DATA\r\n");
      await conn.write("250 ok\r\n250 ok\r\n354 go\r\n");
      await conn.readUntil("\r\n.\r\n");
      await conn.write("451 4.3.0 try later\r\n");
      await expectLine(conn, "RSET");
      await conn.write("250 reset\r\n");
      await bye(conn);
    }, async (options) => {
      const client = await SmtpClient.connect(options);
      const r = await client.send({ from: "a@x.test", to: ["b@y.test"], data: enc.encode("x") });
      assert.equal(r.outcome, "message-rejected");
      assert.deepEqual(r.final, { code: 451, enhanced: "4.3.0", lines: ["4.3.0 try later"] });
      assert.equal((await client.rset()).code, 250);
      await client.quit();
    });
  });

  await t.step("a refused RSET is a reply error", async () => {
    await withServer(async (conn) => {
      await hello(conn, []);
      await expectLine(conn, "RSET");
      await conn.write("500 5.5.1 no\r\n");
      await bye(conn);
    }, async (options) => {
      const client = await SmtpClient.connect(options);
      await assert.rejects(client.rset(), (e) => e instanceof SmtpReplyError && e.permanent);
      await client.quit();
    });
  });
});

Deno.test("MAIL parameters are added only as asked and as offered", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["SIZE", "8BITMIME", "SMTPUTF8"]);
    await expectLine(conn, "MAIL FROM:<> SIZE=1234 BODY=8BITMIME SMTPUTF8");
    await conn.write("250 ok\r\n");
    await expectLine(conn, "RCPT TO:<b@example.net>");
    await conn.write("550 no\r\n");
    await expectLine(conn, "RSET");
    await conn.write("250 ok\r\n");
    await expectLine(conn, "MAIL FROM:<jörg@exämple.com> SMTPUTF8");
    await conn.write("550 no\r\n");
    await expectLine(conn, "RSET");
    await conn.write("250 ok\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const data = enc.encode("x");
    const one = await client.send({
      from: "",
      to: ["b@example.net"],
      data,
      params: { size: 1234, body8bit: true, smtputf8: true },
    });
    assert.equal(one.outcome, "recipients-rejected");
    const two = await client.send({ from: "jörg@exämple.com", to: ["b@example.net"], data });
    assert.equal(two.outcome, "mail-rejected");
    await client.quit();
  });
});

Deno.test("unsupported parameters and unsafe addresses fail before anything is sent", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["PIPELINING"]);
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const data = enc.encode("x");
    await assert.rejects(
      client.send({ from: "a@x.test", to: ["b@y.test"], data, params: { body8bit: true } }),
      /8BITMIME/,
    );
    await assert.rejects(
      client.send({ from: "ü@x.test", to: ["b@y.test"], data }),
      /SMTPUTF8/,
    );
    for (const bad of ["a@x.test>\r\nRSET", "a b@x.test", "<a@x.test>", "a@x.test\0"]) {
      await assert.rejects(client.send({ from: bad, to: ["b@y.test"], data }), SmtpProtocolError);
      await assert.rejects(client.send({ from: "a@x.test", to: [bad], data }), SmtpProtocolError);
    }
    await assert.rejects(client.send({ from: "a@x.test", to: [], data }), TypeError);
    await assert.rejects(client.sendLine("NOOP\r\nRSET"), TypeError);
    assert.equal(client.closed, false);
    await client.quit();
  });
});

Deno.test("security starttls refuses a server that does not offer STARTTLS", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["PIPELINING", "AUTH PLAIN LOGIN"]);
    // Nothing more may be sent in clear: no AUTH, no MAIL, not even QUIT.
    assert.equal(await conn.readToEnd(), "");
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect({ ...options, security: "starttls" }),
      (e) => e instanceof SmtpProtocolError && /does not offer STARTTLS/.test(e.message),
    );
  });
});

Deno.test("a refused STARTTLS is an error, never a fallback to plain text", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["STARTTLS"]);
    await expectLine(conn, "STARTTLS");
    await conn.write("454 4.7.0 TLS not available\r\n");
    assert.equal(await conn.readToEnd(), "");
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect({ ...options, security: "starttls" }),
      (e) => e instanceof SmtpReplyError && e.transient && e.command === "STARTTLS",
    );
  });
});

Deno.test("bytes sent after the 220 to STARTTLS are refused (response injection)", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["STARTTLS"]);
    await expectLine(conn, "STARTTLS");
    await conn.write("220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n");
    assert.equal(await conn.readToEnd(), "");
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect({ ...options, security: "starttls" }),
      (e) => e instanceof SmtpProtocolError && /after the STARTTLS reply/.test(e.message),
    );
  });
});

Deno.test("a reply larger than maxReplyBytes is refused and the connection closed", async () => {
  let written = 0;
  await withServer(async (conn) => {
    await conn.write("220 test.example\r\n");
    await expectLine(conn, "EHLO client.test");
    const line = "250-" + "x".repeat(1020) + "\r\n";
    try {
      // Endless: stops only when the client hangs up.
      for (let i = 0; i < 100_000; i++) {
        await conn.write(line);
        written += line.length;
      }
      assert.fail("client kept reading");
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
    }
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect({ ...options, maxReplyBytes: 16 * 1024 }),
      (e) => e instanceof SmtpProtocolError && /larger than 16384 bytes/.test(e.message),
    );
  });
  assert.ok(written < 10_000_000, `server wrote ${written} bytes`);
});

Deno.test("a silent server times out with SmtpTimeoutError and the client closes", async () => {
  await withServer(async (conn) => {
    await conn.write("220 test.example\r\n");
    await expectLine(conn, "EHLO client.test");
    assert.equal(await conn.readToEnd(), ""); // never answers; waits for the hang-up
  }, async (options) => {
    const started = performance.now();
    await assert.rejects(
      SmtpClient.connect({ ...options, timeouts: { command: 150 } }),
      (e) => e instanceof SmtpTimeoutError && e.timeoutMs === 150,
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 140 && elapsed < 3000, `took ${elapsed} ms`);
  });
});

Deno.test("a missing greeting times out too", async () => {
  await withServer(async (conn) => {
    assert.equal(await conn.readToEnd(), "");
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect({ ...options, timeouts: { command: 100 } }),
      SmtpTimeoutError,
    );
  });
});

Deno.test("the reply after the data waits its own limit, past the command limit armed before it", async () => {
  // The connection keeps one timer: armed for the greeting's 300 ms, it fires
  // while the final reply is awaited and must wait on for the 900 ms data limit.
  await withServer(async (conn) => {
    await hello(conn, []);
    await expectLine(conn, "MAIL FROM:<a@example.com>");
    await conn.write("250 2.1.0 ok\r\n");
    await expectLine(conn, "RCPT TO:<b@example.net>");
    await conn.write("250 2.1.5 ok\r\n");
    await expectLine(conn, "DATA");
    await conn.write("354 go\r\n");
    await conn.readUntil("\r\n.\r\n");
    assert.equal(await conn.readToEnd(), ""); // never answers the dot
  }, async (options) => {
    const client = await SmtpClient.connect({
      ...options,
      timeouts: { command: 300, data: 900 },
    });
    const started = performance.now();
    await assert.rejects(
      client.send({ from: "a@example.com", to: ["b@example.net"], data: enc.encode("Hi") }),
      (e) =>
        e instanceof SmtpTimeoutError && e.phase === "reply" && e.timeoutMs === 900 &&
        e.message === "timed out after 900 ms waiting for reply",
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 890 && elapsed < 5000, `took ${elapsed} ms`);
    assert.equal(client.closed, true);
  });
});

Deno.test("a backend that stops reading times the data write out at the data limit", async () => {
  // A raw server that answers the envelope, then never reads the message:
  // the client's writes block once the socket buffers are full.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(4096);
    const answer = async (reply: string) => {
      await conn.read(buf);
      await conn.write(enc.encode(reply));
    };
    try {
      await conn.write(enc.encode("220 test.example\r\n"));
      await answer("250 test.example\r\n"); // EHLO, no PIPELINING
      await answer("250 2.1.0 ok\r\n");
      await answer("250 2.1.5 ok\r\n");
      await answer("354 go\r\n");
      return conn; // and reads nothing more
    } catch (error) {
      conn.close();
      throw error;
    }
  })();
  try {
    const client = await SmtpClient.connect({
      host: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
      security: "none",
      timeouts: { command: 5000, data: 300 },
    });
    const started = performance.now();
    await assert.rejects(
      client.send({
        from: "a@example.com",
        to: ["b@example.net"],
        data: new Uint8Array(64 * 1024 * 1024).fill(0x61),
      }),
      (e) =>
        e instanceof SmtpTimeoutError && e.phase === "write" && e.timeoutMs === 300 &&
        e.message === "timed out after 300 ms waiting for write",
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 4000, `took ${elapsed} ms`);
    assert.equal(client.closed, true);
  } finally {
    listener.close();
    (await served).close();
  }
});

Deno.test("a server closing in the middle of a reply gives SmtpConnectionError", async () => {
  await withServer(async (conn) => {
    await conn.write("220 test.example\r\n");
    await expectLine(conn, "EHLO client.test");
    await conn.write("250-test.example\r\n250-PIPELINING\r\n");
    conn.close();
  }, async (options) => {
    await assert.rejects(
      SmtpClient.connect(options),
      (e) => e instanceof SmtpConnectionError && /middle of a reply/.test(e.message),
    );
  });
});

Deno.test("a malformed reply gives SmtpProtocolError", async () => {
  await withServer(async (conn) => {
    await conn.write("220 test.example\r\n");
    await expectLine(conn, "EHLO client.test");
    await conn.write("HTTP/1.1 400 Bad Request\r\n");
    assert.equal(await conn.readToEnd(), "");
  }, async (options) => {
    await assert.rejects(SmtpClient.connect(options), /malformed reply line: "HTTP\/1.1 400/);
  });
});

Deno.test("connecting to a closed port gives SmtpConnectionError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    SmtpClient.connect({ host: "127.0.0.1", port, security: "none" }),
    (e) => e instanceof SmtpConnectionError && /connect to 127.0.0.1/.test(e.message),
  );
});

Deno.test("quit tolerates a server that already closed; close is idempotent", async () => {
  const serverClosed = Promise.withResolvers<void>();
  await withServer(async (conn) => {
    await hello(conn, []);
    conn.close();
    serverClosed.resolve();
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    await serverClosed.promise;
    assert.equal(await client.quit(), undefined);
    assert.equal(client.closed, true);
    client.close();
    client.close();
    assert.equal(await client.quit(), undefined);
    await assert.rejects(client.noop(), SmtpConnectionError);
  });
});

Deno.test("AUTH PLAIN sends the initial response; a 535 is permanent and shows no secret", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["AUTH PLAIN LOGIN"]);
    const expected = enc.encode("\0user@x.test\0s3cret-pw").toBase64();
    await expectLine(conn, `AUTH PLAIN ${expected}`);
    await conn.write("235 2.7.0 ok\r\n");
    await expectLine(conn, `AUTH PLAIN ${expected}`);
    await conn.write("535 5.7.8 bad credentials\r\n");
    await expectLine(conn, `AUTH PLAIN ${expected}`);
    await conn.write("454 4.7.0 try later\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const creds = { username: "user@x.test", password: "s3cret-pw" };
    assert.equal((await client.auth(creds)).code, 235);
    const failure = await client.auth(creds).catch((e) => e);
    assert.ok(failure instanceof SmtpReplyError);
    assert.equal(failure.permanent, true);
    assert.equal(failure.command, "AUTH PLAIN");
    assert.ok(!failure.message.includes("s3cret"));
    assert.ok(!failure.message.includes(enc.encode("\0user@x.test\0s3cret-pw").toBase64()));
    await assert.rejects(client.auth(creds), (e) => e instanceof SmtpReplyError && e.transient);
    await client.quit();
  });
});

Deno.test("AUTH LOGIN answers each prompt in turn", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["AUTH LOGIN"]);
    await expectLine(conn, "AUTH LOGIN");
    await conn.write("334 VXNlcm5hbWU6\r\n");
    await expectLine(conn, enc.encode("user@x.test").toBase64());
    await conn.write("334 UGFzc3dvcmQ6\r\n");
    await expectLine(conn, enc.encode("pässword").toBase64());
    await conn.write("235 2.7.0 ok\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    // PLAIN is not offered, so LOGIN is chosen.
    const reply = await client.auth({ username: "user@x.test", password: "pässword" });
    assert.equal(reply.code, 235);
    await client.quit();
  });
});

Deno.test("AUTH with a mechanism the server does not offer fails without sending", async () => {
  await withServer(async (conn) => {
    await hello(conn, ["AUTH XOAUTH2"]);
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    await assert.rejects(
      client.auth({ username: "u", password: "p" }),
      (e) => e instanceof SmtpProtocolError && /offers AUTH XOAUTH2/.test(e.message),
    );
    await assert.rejects(
      client.auth({ username: "u", password: "p", mechanism: "LOGIN" }),
      SmtpProtocolError,
    );
    await client.quit();
  });
});

Deno.test("authRaw, sendLine and readReply drive an XOAUTH2 error exchange", async () => {
  const token = enc.encode("user=u@x.test\x01auth=Bearer abc\x01\x01").toBase64();
  const error = enc.encode('{"status":"401"}').toBase64();
  await withServer(async (conn) => {
    await hello(conn, ["AUTH XOAUTH2 OAUTHBEARER"]);
    await expectLine(conn, `AUTH XOAUTH2 ${token}`);
    await conn.write(`334 ${error}\r\n`);
    await expectLine(conn, "");
    await conn.write("535 5.7.8 invalid token\r\n");
    await expectLine(conn, "AUTH OAUTHBEARER =");
    await conn.write("501 5.5.2 empty\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const challenge = await client.authRaw("XOAUTH2", token);
    assert.deepEqual(challenge, { code: 334, lines: [error] });
    await client.sendLine("");
    assert.equal((await client.readReply()).code, 535);
    assert.equal((await client.authRaw("OAUTHBEARER", "")).code, 501);
    await client.quit();
  });
});

Deno.test("lastActivity follows the injected clock", async () => {
  let now = 1000;
  await withServer(async (conn) => {
    await hello(conn, []);
    await expectLine(conn, "NOOP");
    await conn.write("250 ok\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect({ ...options, now: () => now });
    assert.equal(client.lastActivity, 1000);
    now = 5000;
    await client.noop();
    assert.equal(client.lastActivity, 5000);
    await client.quit();
  });
});

Deno.test("overlapping operations are refused", async () => {
  const refused = Promise.withResolvers<void>();
  await withServer(async (conn) => {
    await hello(conn, []);
    await expectLine(conn, "NOOP");
    await refused.promise; // the first NOOP stays in progress until the second was refused
    await conn.write("250 ok\r\n");
    await bye(conn);
  }, async (options) => {
    const client = await SmtpClient.connect(options);
    const first = client.noop();
    await assert.rejects(client.noop(), /another operation is in progress/);
    refused.resolve();
    assert.equal((await first).code, 250);
    await client.quit();
  });
});

Deno.test("TLS", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp_client_test_" });
  let certs: TestCertificates;
  try {
    certs = await makeTestCertificates(dir);
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const tls = (implicit = false): ScriptTlsOptions => ({
    cert: certs.cert,
    key: certs.key,
    implicit,
  });

  try {
    await t.step("STARTTLS upgrades, forgets the plain-text EHLO, and sends mail", async () => {
      await withServer(async (conn) => {
        await hello(conn, ["PIPELINING", "STARTTLS"]);
        await expectLine(conn, "STARTTLS");
        await conn.write("220 2.0.0 ready\r\n");
        await conn.startTls();
        await expectLine(conn, "EHLO client.test");
        await conn.write(ehloReply(["PIPELINING", "AUTH PLAIN"]));
        await expectLine(conn, `AUTH PLAIN ${enc.encode("\0u@x.test\0pw").toBase64()}`);
        await conn.write("235 ok\r\n");
        assert.equal(
          await conn.readChunk(),
          "MAIL FROM:<u@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n",
        );
        await conn.write("250 ok\r\n250 ok\r\n354 go\r\n");
        assert.equal(dec.decode(await conn.readUntil("\r\n.\r\n")), "secret body\r\n.\r\n");
        await conn.write("250 queued\r\n");
        await bye(conn);
      }, async (options) => {
        const client = await SmtpClient.connect({
          ...options,
          security: "starttls",
          servername: "localhost",
          caCerts: [certs.caCert],
        });
        assert.equal(client.isTls, true);
        assert.deepEqual(client.tlsInfo, {
          servername: "localhost",
          hostnameVerified: true,
          alpnProtocol: null,
          via: "starttls",
        });
        assert.equal(client.extensions.has("STARTTLS"), false);
        assert.deepEqual(client.authMechanisms, ["PLAIN"]);
        await client.auth({ username: "u@x.test", password: "pw" });
        const r = await client.send({
          from: "u@x.test",
          to: ["r@y.test"],
          data: enc.encode("secret body"),
        });
        assert.equal(r.outcome, "sent");
        assert.equal((await client.quit())?.code, 221);
      }, tls());
    });

    await t.step("implicit TLS: the greeting comes inside TLS; IP address SAN works", async () => {
      await withServer(async (conn) => {
        await hello(conn, ["AUTH PLAIN"]);
        await bye(conn);
      }, async (options) => {
        const client = await SmtpClient.connect({
          ...options,
          security: "implicit",
          caCerts: [certs.caCert],
        });
        assert.equal(client.tlsInfo?.via, "implicit");
        assert.equal(client.tlsInfo?.servername, "127.0.0.1");
        assert.equal(client.greeting?.code, 220);
        await client.quit();
      }, tls(true));
    });

    await t.step("an unknown CA is refused, with verify:false too", async () => {
      for (const verify of [true, false]) {
        await withServer(async (conn) => {
          await conn.write("220 never seen\r\n").catch(() => {});
          await conn.readToEnd().catch(() => "");
        }, async (options) => {
          await assert.rejects(
            SmtpClient.connect({ ...options, security: "implicit", verify }),
            (e) => e instanceof SmtpConnectionError && /UnknownIssuer/.test(e.message),
          );
        }, tls(true));
      }
    });

    await t.step("a wrong host name is refused unless verify:false", async () => {
      await withServer(async (conn) => {
        await conn.write("220 never seen\r\n").catch(() => {});
        await conn.readToEnd().catch(() => "");
      }, async (options) => {
        await assert.rejects(
          SmtpClient.connect({
            ...options,
            security: "implicit",
            servername: "mx.elsewhere.test",
            caCerts: [certs.caCert],
          }),
          (e) => e instanceof SmtpConnectionError && /not valid for name/.test(e.message),
        );
      }, tls(true));
      await withServer(async (conn) => {
        await hello(conn, []);
        await bye(conn);
      }, async (options) => {
        const client = await SmtpClient.connect({
          ...options,
          security: "implicit",
          servername: "mx.elsewhere.test",
          caCerts: [certs.caCert],
          verify: false,
        });
        assert.equal(client.tlsInfo?.hostnameVerified, false);
        await client.quit();
      }, tls(true));
    });

    await t.step(
      "STARTTLS towards an untrusted certificate fails and sends nothing more",
      async () => {
        await withServer(async (conn) => {
          await hello(conn, ["STARTTLS", "AUTH PLAIN"]);
          await expectLine(conn, "STARTTLS");
          await conn.write("220 ready\r\n");
          await conn.startTls().catch(() => {});
        }, async (options) => {
          await assert.rejects(
            SmtpClient.connect({ ...options, security: "starttls" }),
            (e) => e instanceof SmtpConnectionError && /UnknownIssuer/.test(e.message),
          );
        }, tls());
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
