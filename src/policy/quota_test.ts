import assert from "node:assert/strict";
import { MemoryStateStore } from "../state/mod.ts";
import { quotaSchema } from "../config/limits_schema.ts";
import { type QuotaOwner, type QuotaReservation, SendQuota } from "./mod.ts";

const HOUR = 3_600_000;

function setup(limits: Record<string, number>, start = Date.UTC(2026, 10, 27, 10, 0, 0)) {
  const clock = { t: start };
  const now = () => clock.t;
  const store = new MemoryStateStore({ now });
  const quota = new SendQuota({ store, limits: quotaSchema.parse(limits), now });
  return { clock, store, quota };
}

const bob: QuotaOwner = { email: "bob@example.com", domain: "example.com" };
const amy: QuotaOwner = { email: "amy@example.com", domain: "example.com" };

/** One accepted message with `recipients` recipients; false when refused. */
async function send(quota: SendQuota, owner: QuotaOwner, recipients = 1): Promise<boolean> {
  const tx = quota.open(owner);
  if (!(await tx.reserveMessage()).ok) return false;
  for (let i = 0; i < recipients; i++) {
    if (!(await tx.reserveRecipient()).ok) {
      await tx.release();
      return false;
    }
  }
  tx.keep();
  return true;
}

Deno.test("SendQuota: defaults are unlimited and store nothing", async () => {
  const { store, quota } = setup({});
  assert.equal(quota.enabled, false);
  for (let i = 0; i < 100; i++) assert.equal(await send(quota, bob, 100), true);
  assert.equal(store.size, 0);
  await store.close();
});

Deno.test("SendQuota: user messages per hour, counted when reserved, reset at the next hour", async () => {
  const { clock, store, quota } = setup({ user_messages_per_hour: 3 });
  for (let i = 0; i < 3; i++) assert.equal(await send(quota, bob), true);
  clock.t += 30 * 60_000;
  assert.deepEqual(await quota.open(bob).reserveMessage(), {
    ok: false,
    exceeded: "user",
    measure: "messages",
    limit: 3,
    window: "hour",
    retryAfterSeconds: 1800,
    permanent: false,
  });
  assert.equal(await send(quota, amy), true, "other users are counted apart");
  clock.t += 30 * 60_000;
  assert.equal(await send(quota, bob), true, "a new hour");
  await store.close();
});

Deno.test("SendQuota: a released reservation costs nothing (RSET, refusal, failed commit)", async () => {
  const { store, quota } = setup({ user_messages_per_hour: 2, user_recipients_per_hour: 3 });
  for (let i = 0; i < 10; i++) {
    const tx = quota.open(bob);
    assert.equal((await tx.reserveMessage()).ok, true);
    assert.equal((await tx.reserveRecipient()).ok, true);
    await tx.release();
  }
  assert.equal(await send(quota, bob, 3), true, "the full quota is still there");
  assert.equal(await send(quota, bob, 1), false, "recipients are used up");
  await store.close();
});

Deno.test("SendQuota: parallel transactions of one user never overshoot", async () => {
  const { store, quota } = setup({ user_messages_per_hour: 5 });
  const txs: QuotaReservation[] = Array.from({ length: 12 }, () => quota.open(bob));
  const decisions = await Promise.all(txs.map((tx) => tx.reserveMessage()));
  assert.equal(decisions.filter((d) => d.ok).length, 5);
  txs.forEach((tx, i) => decisions[i].ok && tx.keep());
  assert.equal((await quota.open(bob).reserveMessage()).ok, false);
  await store.close();
});

Deno.test("SendQuota: recipients per day, and a message too big for the quota is permanent", async () => {
  const { clock, store, quota } = setup({ user_recipients_per_day: 10 });
  assert.equal(await send(quota, bob, 8), true);
  const tx = quota.open(bob);
  await tx.reserveMessage();
  assert.equal((await tx.reserveRecipient()).ok, true);
  assert.equal((await tx.reserveRecipient()).ok, true);
  const over = await tx.reserveRecipient();
  assert.equal(!over.ok && over.window, "day");
  assert.equal(!over.ok && over.permanent, false);
  assert.equal(!over.ok && over.retryAfterSeconds, 14 * 3600, "until UTC midnight");
  await tx.release();
  const huge = quota.open(amy);
  for (let i = 0; i < 2; i++) assert.equal((await huge.reserveRecipient()).ok, true);
  // amy shares nothing with bob's user quota: 10 fit, the 11th can never fit.
  for (let i = 2; i < 10; i++) assert.equal((await huge.reserveRecipient()).ok, true);
  const eleventh = await huge.reserveRecipient();
  assert.equal(!eleventh.ok && eleventh.permanent, true);
  await huge.release();
  clock.t += 14 * HOUR;
  assert.equal(await send(quota, bob, 10), true, "a new UTC day");
  await store.close();
});

Deno.test("SendQuota: the domain quota is shared by its users", async () => {
  const { store, quota } = setup({ domain_messages_per_hour: 4, user_messages_per_hour: 3 });
  for (let i = 0; i < 2; i++) assert.equal(await send(quota, bob), true);
  for (let i = 0; i < 2; i++) assert.equal(await send(quota, amy), true);
  const refused = await quota.open(amy).reserveMessage();
  assert.equal(!refused.ok && refused.exceeded, "domain");
  assert.equal(!refused.ok && refused.limit, 4);
  const other = { email: "zed@other.example", domain: "other.example" };
  assert.equal(await send(quota, other), true);
  await store.close();
});

Deno.test("SendQuota reports the quota that frees up last", async () => {
  const { store, quota } = setup({ user_messages_per_hour: 1, user_messages_per_day: 1 });
  assert.equal(await send(quota, bob), true);
  const refused = await quota.open(bob).reserveMessage();
  assert.equal(!refused.ok && refused.window, "day");
  await store.close();
});

Deno.test("SendQuota: a release after the window rolled over gives nothing back to the new one", async () => {
  const { clock, store, quota } = setup({ user_messages_per_hour: 1 });
  const tx = quota.open(bob);
  assert.equal((await tx.reserveMessage()).ok, true);
  clock.t += HOUR;
  assert.equal(await send(quota, bob), true);
  await tx.release();
  assert.equal((await quota.open(bob).reserveMessage()).ok, false, "no negative count");
  await store.close();
});
