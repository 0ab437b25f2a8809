import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type AuditEvent,
  MemoryAuditLog,
  redactAuditField,
  REDACTED,
  serializeAuditEvent,
} from "./mod.ts";

/** Field names that carry secrets, in the spellings the relay's parts and libraries use. */
const SECRET_KEYS = [
  "password",
  "Password",
  "bind_password",
  "passwd",
  "secret",
  "client_secret",
  "clientSecret",
  "token",
  "access_token",
  "refreshToken",
  "id-token",
  "authorization",
  "Proxy-Authorization",
];

Deno.test("redactAuditField() names passwords, secrets, tokens and authorization headers", () => {
  for (const key of SECRET_KEYS) {
    assert.equal(redactAuditField(key), true, key);
  }
  for (const key of ["event", "email", "token_type", "tokens", "session", "auth", "method"]) {
    assert.equal(redactAuditField(key), false, key);
  }
});

Deno.test("serializeAuditEvent() puts ts first, redacts at any depth, keeps flags", () => {
  const line = serializeAuditEvent(
    { event: "x", token: "abc", list: [{ secret: 1 }], has_token: false, password: null },
    "2026-01-01T00:00:00.000Z",
  );
  assert.equal(
    line,
    `{"ts":"2026-01-01T00:00:00.000Z","event":"x","token":"${REDACTED}",` +
      `"list":[{"secret":"${REDACTED}"}],"has_token":false,"password":null}`,
  );
});

/** The serializer as it was: one object, a replacer called for every key at every depth. */
function referenceSerialize(event: AuditEvent, ts: string): string {
  const redactor = (key: string, value: unknown) =>
    key === "" || value === null || value === undefined || typeof value === "boolean"
      ? value
      : redactAuditField(key)
      ? REDACTED
      : value;
  try {
    return JSON.stringify({ ts, ...event }, redactor);
  } catch (error) {
    return JSON.stringify({
      ts,
      event: typeof event.event === "string" ? event.event : "unknown",
      audit_error: `event could not be serialized: ${
        error instanceof Error ? error.name : "error"
      }`,
    });
  }
}

Deno.test("serializeAuditEvent() never writes a secret field's value, flat or nested, whatever its type", () => {
  for (const key of SECRET_KEYS) {
    for (const secret of ["s3cr3t-value", 31337, 31337n, () => "s3cr3t-value"]) {
      const flat = serializeAuditEvent({ event: "x", email: "a@example.com", [key]: secret }, "T");
      assert.equal(flat, `{"ts":"T","event":"x","email":"a@example.com","${key}":"${REDACTED}"}`);
      const nested = serializeAuditEvent(
        { event: "x", [key]: "s3cr3t-value", inner: [{ [key]: secret }] },
        "T",
      );
      assert.doesNotMatch(nested, /s3cr3t|31337/, `${key} nested`);
      assert.ok(nested.includes(`"${key}":"${REDACTED}"`), nested);
    }
  }
});

Deno.test("serializeAuditEvent() writes any event exactly as the replacer-on-every-key version did", () => {
  const key = fc.constantFrom(
    "event",
    "email",
    "ts",
    "0",
    "12",
    "has_token",
    "token_type",
    "session",
    "toJSON",
    ...SECRET_KEYS,
  );
  const leaf = fc.oneof(
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.constant(() => 1),
    fc.constant(Symbol("s")),
    fc.constant(1n),
    fc.constant(new Date(0)),
  );
  const value = fc.oneof(leaf, fc.array(leaf, { maxLength: 3 }), fc.dictionary(key, leaf));
  fc.assert(
    fc.property(fc.dictionary(key, value), fc.string(), (fields, ts) => {
      const event = { event: "x", ...fields } as AuditEvent;
      assert.equal(serializeAuditEvent(event, ts), referenceSerialize(event, ts));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("MemoryAuditLog is healthy and not required unless a test says otherwise", () => {
  const audit = new MemoryAuditLog();
  assert.equal(audit.healthy, true);
  assert.equal(audit.required, false);
});
