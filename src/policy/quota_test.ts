import assert from "node:assert/strict";
import { MemoryStateStore } from "../state/mod.ts";
import { quotaSchema } from "../config/limits_schema.ts";
import { SendQuota } from "./mod.ts";

const HOUR = 3_600_000;

function setup(limits: Record<string, number>, start = Date.UTC(2026, 10, 27, 10, 0, 0)) {
  const clock = { t: start };
  const now = () => clock.t;
  const store = new MemoryStateStore({ now });
  const quota = new SendQuota({ store, limits: quotaSchema.parse(limits), now });
  return { clock, store, quota };
}

const bob = { email: "bob@example.com", domain: "example.com", recipients: 1 };
const amy = { email: "amy@example.com", domain: "example.com", recipients: 1 };

Deno.test("SendQuota: defaults are unlimited", async () => {
  const { store, quota } = setup({});
  assert.equal(quota.enabled, false);
  for (let i = 0; i < 100; i++) await quota.commit({ ...bob, recipients: 100 });
  assert.deepEqual(await quota.checkMessage(bob), { ok: true });
  assert.equal(store.size, 0);
  await store.close();
});

Deno.test("SendQuota: user messages per hour, counted on commit, reset at the next hour", async () => {
  const { clock, store, quota } = setup({ user_messages_per_hour: 3 });
  for (let i = 0; i < 5; i++) {
    assert.equal((await quota.checkMessage(bob)).ok, true, "checks alone cost nothing");
  }
  for (let i = 0; i < 3; i++) await quota.commit(bob);
  clock.t += 30 * 60_000;
  assert.deepEqual(await quota.checkMessage(bob), {
    ok: false,
    exceeded: "user",
    measure: "messages",
    limit: 3,
    window: "hour",
    retryAfterSeconds: 1800,
    permanent: false,
  });
  assert.equal((await quota.checkMessage(amy)).ok, true, "other users are counted apart");
  clock.t += 30 * 60_000;
  assert.equal((await quota.checkMessage(bob)).ok, true, "a new hour");
  await store.close();
});

Deno.test("SendQuota: recipients per day, and a message too big for the quota is permanent", async () => {
  const { clock, store, quota } = setup({ user_recipients_per_day: 10 });
  await quota.commit({ ...bob, recipients: 8 });
  assert.equal((await quota.checkMessage({ ...bob, recipients: 2 })).ok, true);
  const over = await quota.checkMessage({ ...bob, recipients: 3 });
  assert.equal(!over.ok && over.window, "day");
  assert.equal(!over.ok && over.permanent, false);
  assert.equal(!over.ok && over.retryAfterSeconds, 14 * 3600, "until UTC midnight");
  const huge = await quota.checkMessage({ ...amy, recipients: 11 });
  assert.equal(!huge.ok && huge.permanent, true);
  clock.t += 14 * HOUR;
  assert.equal((await quota.checkMessage({ ...bob, recipients: 10 })).ok, true, "a new UTC day");
  await store.close();
});

Deno.test("SendQuota: the domain quota is shared by its users", async () => {
  const { store, quota } = setup({ domain_messages_per_hour: 4, user_messages_per_hour: 3 });
  for (let i = 0; i < 2; i++) await quota.commit(bob);
  for (let i = 0; i < 2; i++) await quota.commit(amy);
  const refused = await quota.checkMessage(amy);
  assert.equal(!refused.ok && refused.exceeded, "domain");
  assert.equal(!refused.ok && refused.limit, 4);
  const other = { email: "zed@other.example", domain: "other.example", recipients: 1 };
  assert.equal((await quota.checkMessage(other)).ok, true);
  await store.close();
});

Deno.test("SendQuota reports the quota that frees up last", async () => {
  const { store, quota } = setup({ user_messages_per_hour: 1, user_messages_per_day: 1 });
  await quota.commit(bob);
  const refused = await quota.checkMessage(bob);
  assert.equal(!refused.ok && refused.window, "day");
  await store.close();
});
