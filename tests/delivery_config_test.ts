/**
 * `[relay]` settings: backend URLs, the schema's defaults and key-naming
 * errors, and that routes never inherit the default backend's credentials.
 */
import type { Envelope } from "../src/mail/mod.ts";
import assert from "node:assert/strict";
import { parseRelayConfig, RelayConfigError } from "../src/config/relay_schema.ts";
import { createDeliveryBackend, parseRelayUrl, RelayUrlError } from "../src/delivery/mod.ts";
import { SmtpSink } from "./support/sink.ts";

/** Parses a URL that must be an SMTP one. */
function smtp(url: string) {
  const target = parseRelayUrl(url);
  assert.equal(target.kind, "smtp");
  return target as Extract<typeof target, { kind: "smtp" }>;
}

Deno.test("relay URL: schemes, TLS modes, default ports", () => {
  assert.deepEqual(parseRelayUrl("smtp://mail.example.net:587?tls=starttls"), {
    kind: "smtp",
    host: "mail.example.net",
    port: 587,
    security: "starttls",
    display: "smtp://mail.example.net:587?tls=starttls",
  });
  assert.equal(smtp("smtp://mail.example.net").security, "starttls", "TLS by default");
  assert.equal(smtp("smtp://mail.example.net").port, 25);
  assert.deepEqual(parseRelayUrl("smtps://mail.example.net"), {
    kind: "smtp",
    host: "mail.example.net",
    port: 465,
    security: "implicit",
    display: "smtps://mail.example.net:465",
  });
  assert.equal(smtp("smtp://127.0.0.1:25?tls=none").security, "none");
  assert.equal(smtp("smtp://[::1]:2525?tls=none").host, "::1");
  assert.deepEqual(parseRelayUrl("file:data/outbox"), { kind: "file", dir: "data/outbox" });
  for (
    const [bad, why] of [
      ["smtp://user:pw@mail.example.net", /credentials/],
      ["smtps://mail.example.net?tls=none", /implicit/],
      ["smtp://mail.example.net?tls=maybe", /tls=maybe/],
      ["smtp://mail.example.net?foo=1", /unknown URL parameter foo/],
      ["http://mail.example.net", /unsupported scheme http/],
      ["file:", /directory/],
      ["not a url", /not a URL/],
    ] as const
  ) {
    assert.throws(
      () => parseRelayUrl(bad),
      (e: Error) => e instanceof RelayUrlError && why.test(e.message),
    );
  }
  assert.ok(!smtp("smtp://mail.example.net:587").display.includes("@"));
});

Deno.test("relay config: defaults, and errors that name the key", () => {
  const defaults = parseRelayConfig(undefined);
  assert.equal(defaults.url, "file:data/outbox");
  assert.equal(defaults.verify, true);
  assert.equal(defaults.pool_size, 4);
  assert.equal(defaults.max_age, 5 * 86400);
  assert.deepEqual(defaults.retry_schedule, [60, 120, 240, 480, 960, 1920, 3600]);
  assert.deepEqual(defaults.routes, {});
  const routed = parseRelayConfig({
    url: "smtp://a.example:25",
    routes: { "company.com": { url: "smtps://b.example", pool_size: 2 } },
  });
  assert.equal(routed.routes["company.com"].pool_size, 2);
  const error = (raw: unknown) => {
    try {
      parseRelayConfig(raw);
    } catch (e) {
      assert.ok(e instanceof RelayConfigError);
      return e.issues.map((i) => i.key);
    }
    assert.fail("expected an error");
  };
  assert.deepEqual(error({ pool_size: 0 }), ["relay.pool_size"]);
  assert.deepEqual(error({ retry_schedule: [] }), ["relay.retry_schedule"]);
  assert.deepEqual(error({ bogus: 1 }), ["relay.bogus"]);
  assert.deepEqual(error({ routes: { "company.com": { url: "smtp://x", colour: "red" } } }), [
    "relay.routes.company.com.colour",
  ]);
  assert.deepEqual(error({ routes: { "company.com": {} } }), ["relay.routes.company.com.url"]);
});

Deno.test("relay config: a route never inherits the default backend's credentials", async () => {
  // The default backend wants AUTH; the route's backend offers none. Were the
  // credentials inherited, the route would try AUTH and defer everything.
  const route = await SmtpSink.start();
  const backend = await createDeliveryBackend(
    parseRelayConfig({
      url: "smtp://127.0.0.1:9?tls=none",
      username: "default-user",
      password: "default-password",
      routes: { "company.com": { url: `smtp://127.0.0.1:${route.port}?tls=none` } },
    }),
    { hostname: "relay.test" },
  );
  try {
    const envelope: Envelope = {
      v: 1,
      id: "19C2F3A4B5C0000000001",
      from: "bob@company.com",
      recipients: ["x@dest.org"],
      receivedAt: new Date().toISOString(),
      client: { address: "127.0.0.1", helo: "t" },
    };
    const [outcome] = await backend.deliver(
      envelope,
      new TextEncoder().encode("Subject: r\r\n\r\nb\r\n"),
      envelope.recipients,
    );
    assert.equal(outcome.status, "delivered", outcome.reply);
    assert.equal(route.count("AUTH"), 0);
  } finally {
    await backend.close();
    await route.close();
  }
  await assert.rejects(
    createDeliveryBackend(parseRelayConfig({ url: "smtp://h", ca: "/nonexistent/ca.pem" }), {
      hostname: "relay.test",
    }),
    (e: Error) => e instanceof RelayUrlError && /^relay\.ca: cannot read/.test(e.message),
  );
  await assert.rejects(
    createDeliveryBackend(parseRelayConfig({ url: "smtp://h", username: "u" }), {
      hostname: "relay.test",
    }),
    /username and password go together/,
  );
});
