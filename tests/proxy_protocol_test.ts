/**
 * PROXY protocol on the SMTPS and submission listeners, behind a real
 * HAProxy (TCP mode with `send-proxy` / `send-proxy-v2`, and TLS terminated
 * by HAProxy with `send-proxy-v2-ssl`), and with hand-written headers for
 * client addresses HAProxy on loopback cannot produce. Asserted through what
 * a user sees: greetings, EHLO lines, AUTH replies, the stored Received:
 * header and the audit trail.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { parseConfigText } from "../src/config/mod.ts";
import { encodeProxyHeaderV2 } from "../src/smtp/proxy_protocol.ts";
import {
  GREETING,
  plain,
  queueId,
  RawClient,
  type RawClientOptions,
  splitReceived,
  transaction,
  waitForMessage,
} from "./support/raw_client.ts";
import {
  haproxyAvailable,
  haproxyPem,
  startHaproxy,
  startHeaderForwarder,
} from "./support/haproxy.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";
import { until } from "./support/until.ts";

const HAVE_HAPROXY = await haproxyAvailable();
const encoder = new TextEncoder();
const ALICE = { email: "alice@example.com", password: "alice-secret-1" };
const MESSAGE = "Subject: via proxy\r\n\r\nhello\r\n";

/** Greeted → EHLO, AUTH PLAIN, one message to bob; returns the stored Received: header. */
async function submit(relay: TestRelay, client: RawClient): Promise<string> {
  strictEqual(
    (await client.command(`AUTH PLAIN ${plain(ALICE.email, ALICE.password)}`)).text,
    "235 2.7.0 Authentication successful",
  );
  const reply = await transaction(client, {
    from: ALICE.email,
    to: ["bob@company.com"],
    data: MESSAGE,
  });
  const id = queueId(reply);
  strictEqual((await client.command("QUIT")).text, "221 2.0.0 Bye");
  const stored = await waitForMessage(relay.outbox, id);
  const { received, rest } = splitReceived(stored);
  strictEqual(new TextDecoder().decode(rest), MESSAGE);
  return received;
}

/** Connects, reads the greeting and checks it is the relay's. */
async function open(options: RawClientOptions): Promise<RawClient> {
  const [client, greeting] = await RawClient.open(options);
  strictEqual(greeting.text, GREETING);
  return client;
}

/** The first EHLO reply line, which names the client address the session uses. */
async function ehloAddress(client: RawClient): Promise<string[]> {
  const reply = await client.command("EHLO client.example");
  strictEqual(reply.code, 250);
  return reply.lines;
}

function auditEvents(relay: TestRelay, event: string): Record<string, unknown>[] {
  return relay.audit.events.filter((e) => e.event === event);
}

/** Polls until `predicate` holds (audit events are written as the server gets to them). */

Deno.test({
  name: "PROXY protocol behind HAProxy in TCP mode: SMTPS with v2, submission with v1",
  ignore: !HAVE_HAPROXY,
  async fn(t) {
    const relay = await startTestRelay({
      config: {
        // HAProxy connects from 127.0.0.2, the client from 127.0.0.1: the
        // addresses the session shows must be the header's, not the socket's.
        smtps: { proxy_protocol: true, trusted_proxies: ["127.0.0.0/8"] },
        submission: { proxy_protocol: true, trusted_proxies: ["127.0.0.0/8"] },
      },
    });
    const proxy = await startHaproxy({
      routes: [
        { name: "smtps", backendPort: relay.smtpsPort, server: "send-proxy-v2 source 127.0.0.2" },
        {
          name: "submission",
          backendPort: relay.submissionPort,
          server: "send-proxy source 127.0.0.2",
        },
      ],
    }).catch(async (error) => {
      await relay.close();
      throw error;
    });
    try {
      await t.step("SMTPS: send-proxy-v2, TLS after the header, AUTH and a message", async () => {
        const client = await open({
          port: proxy.port("smtps"),
          caPem: relay.caPem,
          implicitTls: true,
        });
        try {
          deepStrictEqual((await ehloAddress(client)).slice(0, 1), [
            "250-relay.test Hello client.example [127.0.0.1]",
          ]);
          const received = await submit(relay, client);
          match(received, /^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n/);
          match(received, /with ESMTPSA id [0-9A-F]+\r\n\t\(using TLSv1\.3 with cipher TLS_/);
        } finally {
          client.close();
        }
        const accepted = auditEvents(relay, "message_accepted");
        strictEqual(accepted.length, 1);
        strictEqual(accepted[0].ip, "127.0.0.1");
        strictEqual(accepted[0].port, "smtps");
      });

      await t.step("submission: send-proxy (v1), STARTTLS through the proxy", async () => {
        const client = await open({ port: proxy.port("submission"), caPem: relay.caPem });
        try {
          const lines = await ehloAddress(client);
          strictEqual(lines[0], "250-relay.test Hello client.example [127.0.0.1]");
          ok(lines.includes("250 STARTTLS"), lines.join("\n"));
          ok(!lines.some((l) => l.includes("AUTH")));
          await client.starttls();
          const after = await ehloAddress(client);
          strictEqual(after.at(-1), "250 AUTH PLAIN LOGIN");
          const received = await submit(relay, client);
          match(received, /^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n/);
          match(received, /\(using TLSv1\.3 with cipher TLS_/);
        } finally {
          client.close();
        }
        const accepted = auditEvents(relay, "message_accepted");
        strictEqual(accepted.length, 2);
        deepStrictEqual([accepted[1].ip, accepted[1].port], ["127.0.0.1", "submission"]);
        // The proxy's own address (127.0.0.2) appears nowhere.
        ok(!relay.audit.events.some((e) => e.ip === "127.0.0.2"));
      });

      await t.step("a direct connection without a header is closed, no greeting", async () => {
        for (const port of [relay.smtpsPort, relay.submissionPort]) {
          const client = await RawClient.connect({ port });
          try {
            await client.writeIgnoringClose("EHLO client.example\r\n");
            await client.expectEof();
          } finally {
            client.close();
          }
        }
        await until(
          "two security_proxy_protocol events",
          () => auditEvents(relay, "security_proxy_protocol").length === 2,
        );
        const events = auditEvents(relay, "security_proxy_protocol");
        deepStrictEqual(
          events.map((e) => [e.ip, e.port, e.reason, e.detail]),
          [
            ["127.0.0.1", "smtps", "malformed", "not a PROXY protocol header"],
            ["127.0.0.1", "submission", "malformed", "not a PROXY protocol header"],
          ],
        );
      });

      await t.step("the server still serves through the proxy afterwards", async () => {
        const client = await open({ port: proxy.port("submission"), caPem: relay.caPem });
        try {
          strictEqual((await client.command("NOOP")).text, "250 2.0.0 Ok");
        } finally {
          client.close();
        }
      });
    } finally {
      await proxy.close();
      await relay.close();
    }
  },
});

Deno.test("hand-written PROXY headers: the client address reaches EHLO, audit and Received:", async (t) => {
  const relay = await startTestRelay({
    config: {
      smtps: { proxy_protocol: true, proxy_header_timeout_seconds: 0.3 },
      submission: { proxy_protocol: true },
    },
  });
  try {
    await t.step("SMTPS: v2 header from 203.0.113.7 sent with the ClientHello", async () => {
      // Header and ClientHello in one write: the server must pass the rest on to TLS.
      const forwarder = startHeaderForwarder(
        relay.smtpsPort,
        encodeProxyHeaderV2({
          source: { address: "203.0.113.7", port: 40000 },
          destination: { address: "192.0.2.1", port: 465 },
        }),
      );
      try {
        const client = await open({ port: forwarder.port, caPem: relay.caPem, implicitTls: true });
        try {
          strictEqual(
            (await ehloAddress(client))[0],
            "250-relay.test Hello client.example [203.0.113.7]",
          );
          const received = await submit(relay, client);
          match(received, /^Received: from client\.example \(\[203\.0\.113\.7\]\)\r\n/);
        } finally {
          client.close();
        }
      } finally {
        await forwarder.close();
      }
      const auth = auditEvents(relay, "auth_attempt");
      deepStrictEqual(auth.map((e) => [e.ip, e.success]), [["203.0.113.7", true]]);
      const accepted = auditEvents(relay, "message_accepted");
      deepStrictEqual(accepted.map((e) => [e.ip, e.port]), [["203.0.113.7", "smtps"]]);
    });

    await t.step(
      "submission: v1 TCP6 header, address canonical in EHLO and Received:",
      async () => {
        const client = await RawClient.connect({ port: relay.submissionPort, caPem: relay.caPem });
        try {
          await client.write("PROXY TCP6 2001:DB8:0::7 2001:db8::1 40001 587\r\n");
          strictEqual((await client.reply()).text, GREETING);
          strictEqual(
            (await ehloAddress(client))[0],
            "250-relay.test Hello client.example [2001:db8::7]",
          );
          await client.starttls();
          await ehloAddress(client);
          const received = await submit(relay, client);
          match(received, /^Received: from client\.example \(\[IPv6:2001:db8::7\]\)\r\n/);
        } finally {
          client.close();
        }
        strictEqual(auditEvents(relay, "message_accepted").at(-1)?.ip, "2001:db8::7");
      },
    );

    await t.step("PROXY UNKNOWN and v2 LOCAL: the socket's own address", async () => {
      const v1 = await RawClient.connect({ port: relay.submissionPort });
      try {
        await v1.write("PROXY UNKNOWN\r\n");
        strictEqual((await v1.reply()).text, GREETING);
        strictEqual((await ehloAddress(v1))[0], "250-relay.test Hello client.example [127.0.0.1]");
      } finally {
        v1.close();
      }
      const v2 = await RawClient.connect({ port: relay.submissionPort });
      try {
        await v2.write(encodeProxyHeaderV2({ command: "local" }));
        strictEqual((await v2.reply()).text, GREETING);
        strictEqual((await ehloAddress(v2))[0], "250-relay.test Hello client.example [127.0.0.1]");
      } finally {
        v2.close();
      }
    });

    await t.step(
      "garbage, an overlong v1 line and silence are closed without a greeting",
      async () => {
        const before = auditEvents(relay, "security_proxy_protocol").length;
        const cases: [number, string | Uint8Array][] = [
          [relay.submissionPort, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
          [relay.submissionPort, `PROXY UNKNOWN ${"x".repeat(200)}\r\n`],
          [relay.submissionPort, "PROXY TCP4 203.0.113.7 192.0.2.1 40000 99999\r\n"],
          [relay.smtpsPort, Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x10)],
        ];
        for (const [port, bytes] of cases) {
          const client = await RawClient.connect({ port });
          try {
            await client.writeIgnoringClose(bytes);
            await client.expectEof();
          } finally {
            client.close();
          }
        }
        // Nothing at all: closed after the header timeout (0.3 s on SMTPS).
        const silent = await RawClient.connect({ port: relay.smtpsPort });
        try {
          const started = performance.now();
          await silent.expectEof();
          ok(performance.now() - started >= 250);
        } finally {
          silent.close();
        }
        await until(
          "five more security_proxy_protocol events",
          () => auditEvents(relay, "security_proxy_protocol").length === before + 5,
        );
        deepStrictEqual(
          auditEvents(relay, "security_proxy_protocol").slice(before).map((e) => [
            e.port,
            e.reason,
            e.detail,
          ]),
          [
            ["submission", "malformed", "not a PROXY protocol header"],
            ["submission", "malformed", "v1 header longer than 107 bytes"],
            ["submission", "malformed", "v1 header has a bad TCP4 address or port"],
            ["smtps", "malformed", "not a PROXY protocol header"],
            ["smtps", "timeout", "no complete PROXY header within 300 ms"],
          ],
        );
      },
    );

    await t.step("a connection that closes before sending anything is not audited", async () => {
      const before = auditEvents(relay, "security_proxy_protocol").length;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.submissionPort });
      conn.close();
      // A following real session proves the server went on (and gives the close time to land).
      const client = await RawClient.connect({ port: relay.submissionPort });
      try {
        await client.write("PROXY TCP4 198.51.100.4 192.0.2.1 1 587\r\n");
        strictEqual((await client.reply()).text, GREETING);
        strictEqual((await client.command("QUIT")).text, "221 2.0.0 Bye");
      } finally {
        client.close();
      }
      strictEqual(auditEvents(relay, "security_proxy_protocol").length, before);
    });
  } finally {
    await relay.close();
  }
});

Deno.test({
  name:
    "HAProxy terminates TLS (send-proxy-v2-ssl): AUTH on the plain listener only with the SSL TLV",
  ignore: !HAVE_HAPROXY,
  async fn(t) {
    const relay = await startTestRelay({
      config: {
        smtps: { enabled: false },
        submission: { proxy_protocol: true, proxy_tls_terminated: true },
      },
    });
    let proxy;
    try {
      const pem = await haproxyPem(join(relay.dir, "certs"), relay.dir);
      proxy = await startHaproxy({
        routes: [
          {
            name: "tls",
            backendPort: relay.submissionPort,
            server: "send-proxy-v2-ssl proxy-v2-options ssl-cipher,crc32c",
            tlsPem: pem,
          },
          // TLV present but the client did not use TLS (plain bind).
          { name: "plain_ssl_tlv", backendPort: relay.submissionPort, server: "send-proxy-v2-ssl" },
          // No SSL TLV at all.
          { name: "plain", backendPort: relay.submissionPort, server: "send-proxy-v2" },
        ],
      });
    } catch (error) {
      await relay.close();
      throw error;
    }
    try {
      await t.step(
        "TLS at HAProxy: AUTH offered after EHLO, no STARTTLS, Received says TLS",
        async () => {
          const client = await open({
            port: proxy.port("tls"),
            caPem: relay.caPem,
            implicitTls: true,
          });
          try {
            const lines = await ehloAddress(client);
            strictEqual(lines.at(-1), "250 AUTH PLAIN LOGIN");
            ok(!lines.includes("250-STARTTLS"), lines.join("\n"));
            strictEqual(
              (await client.command("STARTTLS")).text,
              "554 5.5.1 Error: TLS already active",
            );
            const received = await submit(relay, client);
            match(received, /^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n/);
            match(
              received,
              /by relay\.test \(relay\) with ESMTPSA id [0-9A-F]+\r\n\t\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+\)\r\n/,
            );
          } finally {
            client.close();
          }
        },
      );

      for (const route of ["plain_ssl_tlv", "plain"]) {
        await t.step(`${route}: plaintext behaviour, AUTH refused with 538`, async () => {
          const client = await open({ port: proxy.port(route), caPem: relay.caPem });
          try {
            const lines = await ehloAddress(client);
            strictEqual(lines.at(-1), "250 STARTTLS");
            ok(!lines.some((l) => l.includes("AUTH")));
            strictEqual(
              (await client.command(`AUTH PLAIN ${plain(ALICE.email, ALICE.password)}`)).text,
              "538 5.7.11 Encryption required for requested authentication mechanism",
            );
            strictEqual(
              (await client.command(`MAIL FROM:<${ALICE.email}>`)).text,
              "530 5.7.0 Must issue a STARTTLS command first",
            );
            // STARTTLS through the proxy still works and then offers AUTH.
            await client.starttls();
            strictEqual((await ehloAddress(client)).at(-1), "250 AUTH PLAIN LOGIN");
          } finally {
            client.close();
          }
        });
      }

      await t.step(
        "hand-written SSL TLVs: a failed verify or a LOCAL header is not TLS",
        async () => {
          const ssl = {
            client: 1,
            verify: 1,
            version: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
          };
          const headers = [
            encodeProxyHeaderV2({
              source: { address: "203.0.113.7", port: 1 },
              destination: { address: "192.0.2.1", port: 587 },
              ssl,
            }),
            encodeProxyHeaderV2({ command: "local", ssl: { ...ssl, verify: 0 } }),
          ];
          for (const header of headers) {
            const client = await RawClient.connect({ port: relay.submissionPort });
            try {
              await client.write(header);
              strictEqual((await client.reply()).text, GREETING);
              strictEqual((await ehloAddress(client)).at(-1), "250 STARTTLS");
              strictEqual(
                (await client.command("AUTH PLAIN")).text,
                "538 5.7.11 Encryption required for requested authentication mechanism",
              );
            } finally {
              client.close();
            }
          }
        },
      );
    } finally {
      await proxy.close();
      await relay.close();
    }
  },
});

Deno.test({
  name: "PROXY header from an untrusted address: closed without a greeting, audited",
  ignore: !HAVE_HAPROXY,
  async fn() {
    const relay = await startTestRelay({
      config: {
        smtps: { proxy_protocol: true, trusted_proxies: ["10.0.0.0/8", "2001:db8::/32"] },
        submission: { proxy_protocol: true, trusted_proxies: ["10.0.0.0/8"] },
      },
    });
    const proxy = await startHaproxy({
      routes: [
        { name: "smtps", backendPort: relay.smtpsPort, server: "send-proxy-v2" },
        { name: "submission", backendPort: relay.submissionPort, server: "send-proxy" },
      ],
    }).catch(async (error) => {
      await relay.close();
      throw error;
    });
    try {
      // Through HAProxy (a valid header, but from 127.0.0.1) and directly with a forged one.
      const smtps = await RawClient.connect({ port: proxy.port("smtps") });
      try {
        // HAProxy has nothing to relay back: the client sees the connection end.
        await smtps.writeIgnoringClose(Uint8Array.of(0x16, 0x03, 0x01));
        await smtps.expectEof();
      } finally {
        smtps.close();
      }
      const submission = await RawClient.connect({ port: proxy.port("submission") });
      try {
        await submission.expectEof();
      } finally {
        submission.close();
      }
      const forged = await RawClient.connect({ port: relay.submissionPort });
      try {
        await forged.writeIgnoringClose("PROXY TCP4 10.0.0.1 192.0.2.1 1 587\r\n");
        await forged.expectEof();
      } finally {
        forged.close();
      }
      await until(
        "three security_proxy_protocol events",
        () => auditEvents(relay, "security_proxy_protocol").length === 3,
      );
      deepStrictEqual(
        auditEvents(relay, "security_proxy_protocol").map((e) => [e.ip, e.reason]).sort(),
        [
          ["127.0.0.1", "untrusted_proxy"],
          ["127.0.0.1", "untrusted_proxy"],
          ["127.0.0.1", "untrusted_proxy"],
        ],
      );
      deepStrictEqual(
        auditEvents(relay, "security_proxy_protocol").map((e) => e.port).sort(),
        ["smtps", "submission", "submission"],
      );
    } finally {
      await proxy.close();
      await relay.close();
    }
  },
});

Deno.test("per-address connection caps count the address from the PROXY header", async () => {
  const relay = await startTestRelay({
    config: {
      smtps: { enabled: false },
      submission: { proxy_protocol: true },
      limits: { max_connections_per_ip: 1 },
    },
  });
  const clients: RawClient[] = [];
  const connect = async (address: string) => {
    const client = await RawClient.connect({ port: relay.submissionPort });
    clients.push(client);
    await client.write(encoder.encode(`PROXY TCP4 ${address} 192.0.2.1 1000 587\r\n`));
    return (await client.reply()).text;
  };
  try {
    // Every socket comes from 127.0.0.1; only the header's address is capped.
    strictEqual(await connect("198.51.100.1"), GREETING);
    strictEqual(await connect("198.51.100.2"), GREETING);
    strictEqual(
      await connect("198.51.100.1"),
      "421 4.7.0 relay.test Error: too many connections from 198.51.100.1",
    );
  } finally {
    for (const client of clients) client.close();
    await relay.close();
  }
});

Deno.test("shutdown closes connections still waiting for their PROXY header", async () => {
  const relay = await startTestRelay({
    config: { smtps: { enabled: false }, submission: { proxy_protocol: true } },
  });
  const client = await RawClient.connect({ port: relay.submissionPort });
  try {
    await client.write("PROXY TCP4 ");
    const started = performance.now();
    // The header timeout is 5 s; shutdown must not wait for it.
    await relay.close();
    ok(performance.now() - started < 2000, `shutdown took ${performance.now() - started} ms`);
    await client.expectEof();
  } finally {
    client.close();
  }
});

Deno.test("PROXY protocol settings are checked at start", async () => {
  const configError = (toml: string) => {
    try {
      parseConfigText(toml, "relay.toml");
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error("expected a configuration error");
  };
  match(
    configError("[submission]\nproxy_tls_terminated = true\n"),
    /submission\.proxy_tls_terminated: needs proxy_protocol = true/,
  );
  match(
    configError('[smtps]\nproxy_protocol = true\ntrusted_proxies = ["10.0.0.0/33"]\n'),
    /smtps\.trusted_proxies\.0: expected an IP address or CIDR range/,
  );
  match(
    configError("[smtps]\nproxy_protocol = true\ntrusted_proxies = []\n"),
    /smtps\.trusted_proxies: is empty/,
  );
  let error: unknown = null;
  try {
    const relay = await startTestRelay({
      config: { smtps: { proxy_protocol: true, proxy_tls_terminated: true } },
    });
    await relay.close();
  } catch (e) {
    error = e;
  }
  ok(error instanceof Error, "expected startRelay to refuse");
  match(error.message, /smtps\.proxy_tls_terminated: the SMTPS listener does its own TLS/);
});
