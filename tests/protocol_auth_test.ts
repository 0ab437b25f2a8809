/**
 * SMTP AUTH (RFC 4954) on both ports: PLAIN and LOGIN exchanges, every
 * refusal with its exact reply, AUTH line limits, disabled domains and a
 * temporarily failing authenticator.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { AuthResult, PasswordAuthenticator } from "../src/auth/authenticator.ts";
import {
  authenticated,
  b64,
  connectTo,
  greeted,
  plain,
  PORTS,
  type RawClient,
} from "./support/raw_client.ts";
import { startTestRelay } from "./support/relay.ts";

const ALICE = plain("alice@example.com", "alice-secret-1");
const OK = "235 2.7.0 Authentication successful";
const FAILED = "535 5.7.8 Error: authentication failed";
const BAD_BASE64 = "501 5.5.2 Cannot decode response";

/** Runs `body` on a fresh, greeted (TLS, EHLO) session on each port. */
async function onEachPort(
  relay: Parameters<typeof greeted>[0],
  body: (c: RawClient) => Promise<void>,
): Promise<void> {
  for (const kind of PORTS) {
    const c = await greeted(relay, kind);
    try {
      await body(c);
    } catch (error) {
      throw new Error(`on ${kind}: ${error instanceof Error ? error.message : error}`, {
        cause: error,
      });
    } finally {
      c.close();
    }
  }
}

Deno.test("AUTH exchanges and refusals", async (t) => {
  const relay = await startTestRelay();
  try {
    await t.step("AUTH on plain submission: 538 5.7.11, even after a good EHLO", async () => {
      const [c] = await connectTo(relay, "submission");
      try {
        await c.command("EHLO client.example");
        strictEqual(
          (await c.command(`AUTH PLAIN ${ALICE}`)).text,
          "538 5.7.11 Encryption required for requested authentication mechanism",
        );
        strictEqual(
          (await c.command("AUTH LOGIN")).text,
          "538 5.7.11 Encryption required for requested authentication mechanism",
        );
        // Still usable: STARTTLS then AUTH works.
        await c.starttls();
        await c.command("EHLO client.example");
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      } finally {
        c.close();
      }
    });

    await t.step("AUTH before EHLO: 503", async () => {
      const [c] = await connectTo(relay, "smtps");
      try {
        strictEqual(
          (await c.command(`AUTH PLAIN ${ALICE}`)).text,
          "503 5.5.1 Error: send HELO/EHLO first",
        );
      } finally {
        c.close();
      }
    });

    await t.step("PLAIN with an initial response", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step("PLAIN without initial response: empty 334, then the response", async () => {
      await onEachPort(relay, async (c) => {
        deepStrictEqual((await c.command("AUTH PLAIN")).lines, ["334 "]);
        strictEqual((await c.command(ALICE)).text, OK);
      });
    });

    await t.step("mechanism names are case-insensitive", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual((await c.command(`auth plain ${ALICE}`)).text, OK);
      });
    });

    await t.step("PLAIN with '=' (zero-length initial response) is malformed", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual(
          (await c.command("AUTH PLAIN =")).text,
          "501 5.5.2 Invalid authentication data: PLAIN message must have three NUL-separated fields",
        );
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step("PLAIN authzid: empty or equal to authcid, else 535", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual(
          (await c.command(
            `AUTH PLAIN ${plain("alice@example.com", "alice-secret-1", "bob@company.com")}`,
          )).text,
          "535 5.7.8 Error: authorization identity must match the authentication identity",
        );
        strictEqual(
          (await c.command(
            `AUTH PLAIN ${plain("alice@example.com", "alice-secret-1", "alice@example.com")}`,
          )).text,
          OK,
        );
      });
    });

    await t.step("wrong password and unknown user get identical 535 5.7.8", async () => {
      await onEachPort(relay, async (c) => {
        const wrong = await c.command(`AUTH PLAIN ${plain("alice@example.com", "nope")}`);
        const unknown = await c.command(
          `AUTH PLAIN ${plain("nobody@example.com", "alice-secret-1")}`,
        );
        const otherDomain = await c.command(
          `AUTH PLAIN ${plain("alice@unknown.example", "alice-secret-1")}`,
        );
        strictEqual(wrong.text, FAILED);
        strictEqual(unknown.text, FAILED);
        strictEqual(otherDomain.text, FAILED);
        // The session is still good for a correct AUTH.
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step("PLAIN with an empty password or missing fields: 501 5.5.2", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual(
          (await c.command(`AUTH PLAIN ${b64("\0alice@example.com\0")}`)).text,
          "501 5.5.2 Invalid authentication data: PLAIN user name and password must not be empty",
        );
        strictEqual(
          (await c.command(`AUTH PLAIN ${b64("alice@example.com")}`)).text,
          "501 5.5.2 Invalid authentication data: PLAIN message must have three NUL-separated fields",
        );
      });
    });

    await t.step("'*' cancels the exchange with 501 5.7.0", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual((await c.command("AUTH PLAIN")).text, "334 ");
        strictEqual((await c.command("*")).text, "501 5.7.0 Authentication aborted");
        strictEqual((await c.command("AUTH LOGIN")).text, "334 VXNlcm5hbWU6");
        strictEqual((await c.command(b64("alice@example.com"))).text, "334 UGFzc3dvcmQ6");
        strictEqual((await c.command("*")).text, "501 5.7.0 Authentication aborted");
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step(
      "broken base64: 501 5.5.2, in the initial response and in a response",
      async () => {
        await onEachPort(relay, async (c) => {
          strictEqual((await c.command("AUTH PLAIN abc$")).text, BAD_BASE64);
          strictEqual((await c.command("AUTH PLAIN abc")).text, BAD_BASE64);
          strictEqual((await c.command("AUTH PLAIN YQ=")).text, BAD_BASE64);
          strictEqual((await c.command("AUTH PLAIN")).text, "334 ");
          strictEqual((await c.command("not base64!")).text, BAD_BASE64);
          strictEqual((await c.command("AUTH LOGIN")).text, "334 VXNlcm5hbWU6");
          strictEqual((await c.command("%%%%")).text, BAD_BASE64);
          strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
          strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
        });
      },
    );

    await t.step("unknown mechanism: 504 5.5.4", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual(
          (await c.command("AUTH CRAM-MD5")).text,
          "504 5.5.4 Unrecognized authentication type",
        );
        strictEqual(
          (await c.command("AUTH XOAUTH2 dG9rZW4=")).text,
          "504 5.5.4 Unrecognized authentication type",
        );
        strictEqual(
          (await c.command("AUTH")).text,
          "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
        );
      });
    });

    await t.step("LOGIN step by step", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual((await c.command("AUTH LOGIN")).text, "334 VXNlcm5hbWU6");
        strictEqual((await c.command(b64("alice@example.com"))).text, "334 UGFzc3dvcmQ6");
        strictEqual((await c.command(b64("alice-secret-1"))).text, OK);
      });
    });

    await t.step("LOGIN with an initial response, and with '='", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual(
          (await c.command(`AUTH LOGIN ${b64("alice@example.com")}`)).text,
          "334 UGFzc3dvcmQ6",
        );
        strictEqual((await c.command(b64("wrong"))).text, FAILED);
        strictEqual((await c.command("AUTH LOGIN =")).text, "334 VXNlcm5hbWU6");
        strictEqual((await c.command(b64("alice@example.com"))).text, "334 UGFzc3dvcmQ6");
        strictEqual((await c.command(b64("alice-secret-1"))).text, OK);
      });
    });

    await t.step("AUTH twice: 503", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
        strictEqual(
          (await c.command(`AUTH PLAIN ${ALICE}`)).text,
          "503 5.5.1 Error: already authenticated",
        );
      });
    });

    await t.step("AUTH during a transaction: 503", async () => {
      for (const kind of PORTS) {
        const c = await authenticated(relay, kind);
        try {
          strictEqual((await c.command("MAIL FROM:<alice@example.com>")).text, "250 2.1.0 Ok");
          strictEqual(
            (await c.command(`AUTH PLAIN ${ALICE}`)).text,
            "503 5.5.1 Error: MAIL transaction in progress",
          );
          strictEqual((await c.command("RCPT TO:<x@dest.example>")).text, "250 2.1.5 Ok");
        } finally {
          c.close();
        }
      }
    });

    await t.step("an AUTH line of 12288 octets is accepted as a line", async () => {
      await onEachPort(relay, async (c) => {
        // "AUTH  PLAIN " (12 octets, two spaces) + 12276 base64 octets = 12288.
        const payload = b64(`\0alice@example.com\0${"x".repeat(9207 - 19)}`);
        strictEqual(payload.length, 12276);
        const line = `AUTH  PLAIN ${payload}`;
        strictEqual(line.length, 12288);
        strictEqual((await c.command(line)).text, FAILED);
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step("an AUTH line over 12288 octets: 500 5.5.2 line too long", async () => {
      await onEachPort(relay, async (c) => {
        const payload = b64(`\0alice@example.com\0${"x".repeat(9207 - 19)}`);
        strictEqual(
          (await c.command(`AUTH   PLAIN ${payload}`)).text,
          "500 5.5.2 Error: line too long",
        );
        // The same with a bare LF line end (the limit counts the line, not its terminator).
        await c.write(`AUTH   PLAIN ${payload}\n`);
        strictEqual((await c.reply()).text, "500 5.5.2 Error: line too long");
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step("a SASL response of 12288 octets is accepted, longer is refused", async () => {
      await onEachPort(relay, async (c) => {
        const payload = b64(`\0alice@example.com\0${"x".repeat(9216 - 19)}`);
        strictEqual(payload.length, 12288);
        strictEqual((await c.command("AUTH PLAIN")).text, "334 ");
        strictEqual((await c.command(payload)).text, FAILED);
        strictEqual((await c.command("AUTH PLAIN")).text, "334 ");
        strictEqual(
          (await c.command(`${payload}AAAA`)).text,
          "500 5.5.6 Authentication Exchange line is too long",
        );
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
      });
    });

    await t.step("an ordinary command line stays limited to 2048 octets", async () => {
      await onEachPort(relay, async (c) => {
        strictEqual((await c.command(`NOOP ${"x".repeat(2043)}`)).text, "250 2.0.0 Ok");
        strictEqual(
          (await c.command(`NOOP ${"x".repeat(2044)}`)).text,
          "500 5.5.2 Error: line too long",
        );
      });
    });

    await t.step("credentials never reach the audit trail", () => {
      const dump = JSON.stringify(relay.audit.events);
      ok(relay.audit.events.some((e) => e.event === "auth_attempt"));
      ok(!dump.includes("alice-secret-1"), "password in audit trail");
      ok(!dump.includes(ALICE), "AUTH payload in audit trail");
    });
  } finally {
    await relay.close();
  }
});

Deno.test("AUTH: a disabled domain is refused with 535 5.7.8 and cannot send", async () => {
  const relay = await startTestRelay({ config: { domains: { disabled: ["company.com"] } } });
  try {
    for (const kind of PORTS) {
      const c = await greeted(relay, kind);
      try {
        strictEqual(
          (await c.command(`AUTH PLAIN ${plain("bob@company.com", "bob-secret-2")}`)).text,
          "535 5.7.8 Error: authentication failed: domain company.com is disabled",
        );
        strictEqual(
          (await c.command(`AUTH PLAIN ${plain("BOB@Company.COM", "bob-secret-2")}`)).text,
          "535 5.7.8 Error: authentication failed: domain company.com is disabled",
        );
        strictEqual((await c.command(`AUTH PLAIN ${ALICE}`)).text, OK);
        strictEqual(
          (await c.command("MAIL FROM:<bob@company.com>")).text,
          "550 5.7.1 Sender domain company.com is disabled",
        );
      } finally {
        c.close();
      }
    }
  } finally {
    await relay.close();
  }
});

Deno.test("AUTH: an authenticator that cannot answer gives 454 4.7.0", async () => {
  let calls = 0;
  const flaky: PasswordAuthenticator = {
    name: "flaky",
    verifyPassword(): Promise<AuthResult> {
      calls++;
      return Promise.resolve({ ok: false, reason: "temporary_failure", detail: "backend down" });
    },
    close: () => Promise.resolve(),
  };
  const relay = await startTestRelay({ start: { authenticator: flaky } });
  try {
    for (const kind of PORTS) {
      const c = await greeted(relay, kind);
      try {
        strictEqual(
          (await c.command(`AUTH PLAIN ${ALICE}`)).text,
          "454 4.7.0 Temporary authentication failure, try again later",
        );
        // Not counted as authenticated.
        strictEqual(
          (await c.command("MAIL FROM:<alice@example.com>")).text,
          "530 5.7.0 Authentication required",
        );
      } finally {
        c.close();
      }
    }
    strictEqual(calls, 2);
  } finally {
    await relay.close();
  }
});

Deno.test("AUTH: an authenticator that throws gives 454 4.7.0, not a crash", async () => {
  const broken: PasswordAuthenticator = {
    name: "broken",
    verifyPassword: () => Promise.reject(new Error("ldap exploded")),
    close: () => Promise.resolve(),
  };
  const relay = await startTestRelay({ start: { authenticator: broken } });
  try {
    const c = await greeted(relay, "smtps");
    try {
      strictEqual(
        (await c.command(`AUTH PLAIN ${ALICE}`)).text,
        "454 4.7.0 Temporary authentication failure, try again later",
      );
      strictEqual((await c.command("NOOP")).text, "250 2.0.0 Ok");
    } finally {
      c.close();
    }
  } finally {
    await relay.close();
  }
});
