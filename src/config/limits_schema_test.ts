import assert from "node:assert/strict";
import { quotaSchema, rateLimitSchema } from "./limits_schema.ts";
import { stateSchema } from "./state_schema.ts";

Deno.test("limits schemas: an absent section gets the documented defaults", () => {
  assert.deepEqual(rateLimitSchema.parse(undefined), {
    enabled: true,
    per_minute: 5,
    per_hour: 20,
    block_seconds: 300,
    accounts_per_address_per_hour: 10,
    account_failures_per_hour: 10,
    account_attack_seconds: 900,
    familiar_days: 30,
    token_per_minute: 5,
    token_per_hour: 20,
    per_domain_per_minute: 60,
    per_domain_per_hour: 600,
    domain_delay_ms: 2000,
    connections_per_ip_per_minute: 0,
    oauth_registrations_per_ip_per_hour: 20,
  });
  const quota = quotaSchema.parse(undefined);
  assert.equal(Object.keys(quota).length, 8);
  assert.ok(Object.values(quota).every((v) => v === 0), "quotas are unlimited by default");
  assert.deepEqual(stateSchema.parse(undefined), {
    backend: "memory",
    url: "redis://127.0.0.1:6379/0",
    password_file: "",
    ca: "",
    key_prefix: "relay:",
    fail: "closed",
    timeout_ms: 1000,
    max_keys: 1_000_000,
  });
});

Deno.test("limits schemas: unknown keys and bad values are refused with the key's name", () => {
  const typo = rateLimitSchema.safeParse({ per_minut: 5 });
  assert.equal(typo.success, false);
  assert.match(JSON.stringify(typo.error?.issues), /per_minut/);
  const negative = quotaSchema.safeParse({ user_messages_per_day: -1 });
  assert.equal(negative.success, false);
  assert.deepEqual(negative.error?.issues[0].path, ["user_messages_per_day"]);
  assert.equal(rateLimitSchema.safeParse({ block_seconds: 0 }).success, false);
  assert.equal(rateLimitSchema.safeParse({ per_minute: 1.5 }).success, false);
  assert.equal(stateSchema.safeParse({ backend: "valkey" }).success, false);
  const url = stateSchema.safeParse({ backend: "redis", url: "http://127.0.0.1:6379" });
  assert.deepEqual(url.error?.issues[0].path, ["url"]);
  assert.equal(
    stateSchema.parse({ url: "rediss://cache.internal:6380/2" }).url,
    "rediss://cache.internal:6380/2",
  );
  assert.equal(stateSchema.safeParse({ fail: "sometimes" }).success, false);
  assert.equal(rateLimitSchema.parse({ per_minute: 0 }).per_minute, 0, "0 turns a limit off");
});
