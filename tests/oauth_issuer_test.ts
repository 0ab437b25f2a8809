/**
 * `oauth.issuer` follows `oauth.listen` unless set: moving the listener moves
 * discovery and every endpoint with it; an explicit issuer that points
 * elsewhere is a warning at start.
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { issuerMismatch, oauthIssuer } from "../src/config/oauth_schema.ts";
import { startTestRelay } from "./support/relay.ts";
import { freePort } from "./support/ports.ts";

async function discovery(port: number, path: string): Promise<Record<string, string>> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  assert.equal(response.status, 200);
  return await response.json();
}

Deno.test("without oauth.issuer, discovery and every endpoint use the oauth.listen port", async () => {
  const port = freePort();
  const t = await startTestRelay({
    config: { oauth: { enabled: true, listen: `127.0.0.1:${port}` } },
  });
  try {
    const issuer = `http://localhost:${port}`;
    assert.equal(t.relay.oauth?.issuer, issuer);
    for (
      const path of ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
    ) {
      const doc = await discovery(port, path);
      assert.equal(doc.issuer, issuer);
      for (const key of ["authorization_endpoint", "token_endpoint", "jwks_uri"]) {
        assert.ok(doc[key].startsWith(`${issuer}/`), `${path} ${key}: ${doc[key]}`);
      }
    }
  } finally {
    await t.close();
  }
});

Deno.test("an explicit oauth.issuer on another port is kept, with a warning naming both keys", async () => {
  const logs: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => logs.push(record) },
    loggers: [{ category: ["relay"], lowestLevel: "warning", sinks: ["memory"] }],
  });
  const port = freePort();
  const other = port === 65535 ? port - 1 : port + 1;
  try {
    const t = await startTestRelay({
      config: {
        oauth: { enabled: true, listen: `127.0.0.1:${port}`, issuer: `http://localhost:${other}` },
      },
    });
    try {
      assert.equal(
        (await discovery(port, "/.well-known/oauth-authorization-server")).issuer,
        `http://localhost:${other}`,
      );
      const warnings = logs.map((r) => r.message.map(String).join(""));
      const warning = warnings.find((w) => w.startsWith("oauth.issuer"));
      assert.ok(warning, warnings.join("\n"));
      assert.match(
        warning,
        new RegExp(
          `^oauth\\.issuer http://localhost:${other} does not match oauth\\.listen 127\\.0\\.0\\.1:${port} \\(port ${other} is not the listener's ${port}\\)`,
        ),
      );
    } finally {
      await t.close();
    }
  } finally {
    await reset();
  }
});

Deno.test("oauthIssuer and issuerMismatch: loopback and wildcard listeners, proxies, IPv6", () => {
  assert.equal(oauthIssuer({ listen: "127.0.0.1:9000" }), "http://localhost:9000");
  assert.equal(oauthIssuer({ listen: "[::1]:9100" }), "http://localhost:9100");
  assert.equal(oauthIssuer({ listen: "192.0.2.7:9000" }), "http://192.0.2.7:9000");
  assert.equal(oauthIssuer({ listen: "[2001:db8::1]:9000" }), "http://[2001:db8::1]:9000");
  assert.equal(
    oauthIssuer({ listen: "127.0.0.1:9000", issuer: "https://a.example/" }),
    "https://a.example",
  );
  assert.equal(issuerMismatch({ listen: "127.0.0.1:9000" }), null);
  assert.equal(issuerMismatch({ listen: "127.0.0.1:9000", issuer: "http://localhost:9000" }), null);
  assert.equal(issuerMismatch({ listen: "0.0.0.0:443", issuer: "https://mail.example.com" }), null);
  assert.equal(
    issuerMismatch({ listen: "127.0.0.1:9000", issuer: "https://mail.example.com" }),
    "port 443 is not the listener's 9000",
  );
  assert.equal(
    issuerMismatch({ listen: "127.0.0.1:443", issuer: "https://mail.example.com" }),
    "host mail.example.com is not the listener's 127.0.0.1",
  );
});
