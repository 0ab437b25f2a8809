import assert from "node:assert/strict";
import { MemoryAuditLog, redactAuditField, REDACTED, serializeAuditEvent } from "./mod.ts";

Deno.test("redactAuditField() names passwords, secrets, tokens and authorization headers", () => {
  for (
    const key of [
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
    ]
  ) {
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

Deno.test("MemoryAuditLog is healthy and not required unless a test says otherwise", () => {
  const audit = new MemoryAuditLog();
  assert.equal(audit.healthy, true);
  assert.equal(audit.required, false);
});
