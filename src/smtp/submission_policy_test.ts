import assert from "node:assert/strict";
import { MemoryAuditLog } from "../audit/mod.ts";
import { quotaSchema } from "../config/limits_schema.ts";
import { SendQuota } from "../policy/mod.ts";
import { MemoryStateStore } from "../state/mod.ts";
import type { PolicyClient, PolicyTransaction } from "./policy.ts";
import { Replies } from "./replies.ts";
import { SubmissionPolicy } from "./submission_policy.ts";

const alice = { email: "alice@example.com", domain: "example.com", mechanism: "PLAIN" };

function setup(quota: Record<string, number> = {}) {
  const audit = new MemoryAuditLog();
  const store = new MemoryStateStore();
  const policy = new SubmissionPolicy({
    disabledDomains: new Set(["closed.example"]),
    audit,
    quota: new SendQuota({ store, limits: quotaSchema.parse(quota) }),
  });
  const events: Record<string, unknown>[] = [];
  const client: PolicyClient = {
    session: "s1",
    ip: "192.0.2.1",
    port: "smtps",
    audit: (event, fields) => events.push({ event, ...fields }),
  };
  return { audit, store, policy, client, events };
}

async function open(
  policy: SubmissionPolicy,
  client: PolicyClient,
  sender = "alice@example.com",
): Promise<PolicyTransaction> {
  const verdict = await policy.mail(client, alice, sender);
  assert.ok("transaction" in verdict, JSON.stringify(verdict));
  return verdict.transaction;
}

Deno.test("SubmissionPolicy: the sender's domain must be the user's, and enabled", async () => {
  const { policy, client, events, store } = setup();
  const other = await policy.mail(client, alice, "alice@other.example");
  assert.deepEqual(other, { reply: Replies.domainMismatch("example.com", "other.example") });
  const closed = await policy.mail(
    client,
    { ...alice, domain: "closed.example" },
    "a@closed.example",
  );
  assert.deepEqual(closed, { reply: Replies.senderDomainDisabled("closed.example") });
  assert.deepEqual(events.map((e) => [e.event, e.reason]), [
    ["domain_mismatch", undefined],
    ["domain_mismatch", "sender_domain_disabled"],
  ]);
  await (await open(policy, client, "Alice@EXAMPLE.com")).end(false);
  await store.close();
});

Deno.test("SubmissionPolicy: quota reservations are kept when accepted, given back otherwise", async () => {
  const { policy, client, store } = setup({
    user_messages_per_hour: 1,
    user_recipients_per_hour: 2,
  });
  const tx = await open(policy, client);
  assert.equal(await tx.rcpt("a@example.net"), null);
  assert.equal(await tx.rcpt("b@example.net"), null);
  // Three recipients can never fit a quota of two: permanent.
  const third = await tx.rcpt("c@example.net");
  assert.equal(third?.code, 552);
  await tx.end(false);
  await tx.end(false); // once only: a second end gives nothing back twice
  const again = await open(policy, client);
  assert.equal(await again.rcpt("a@example.net"), null);
  assert.equal(await again.message({ size: 100, from: ["alice@example.com"] }), null);
  await again.end(true);
  const refused = await policy.mail(client, alice, "alice@example.com");
  assert.ok("reply" in refused && refused.reply.code === 451);
  await store.close();
});

Deno.test("SubmissionPolicy: a required audit trail that is down stops new mail at MAIL and after the dot", async () => {
  const { policy, client, audit, store } = setup();
  audit.required = true;
  const tx = await open(policy, client);
  audit.healthy = false;
  assert.deepEqual(
    await tx.message({ size: 10, from: ["alice@example.com"] }),
    Replies.auditUnavailable(),
  );
  assert.deepEqual(await policy.mail(client, alice, "alice@example.com"), {
    reply: Replies.auditUnavailable(),
  });
  await tx.end(false);
  await store.close();
});

Deno.test("SubmissionPolicy: a quota store that fails answers 451 4.3.0 for the command only", async () => {
  const store = new MemoryStateStore();
  const policy = new SubmissionPolicy({
    disabledDomains: new Set(),
    audit: new MemoryAuditLog(),
    quota: new SendQuota({ store, limits: quotaSchema.parse({ user_messages_per_hour: 5 }) }),
  });
  const client: PolicyClient = { session: "s", ip: "192.0.2.1", port: "smtps", audit: () => {} };
  await store.close(); // every call now rejects, as a store that is down does
  assert.deepEqual(await policy.mail(client, alice, "alice@example.com"), {
    reply: Replies.quotaUnavailable(),
  });
});
