import assert from "node:assert/strict";
import { MemoryAuditLog, observeAuditLog } from "../audit/mod.ts";
import type { DeliveryBackend } from "../delivery/backend.ts";
import { RelayMetrics } from "./metrics.ts";

async function value(metrics: RelayMetrics, name: string, labels: Record<string, string> = {}) {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  const found = metric.values.find((v) =>
    Object.entries(labels).every(([k, want]) => v.labels[k] === want) &&
    Object.keys(v.labels).length === Object.keys(labels).length
  );
  return found?.value ?? null;
}

Deno.test("audit events become counters through the tee; the trail still gets every event", async () => {
  const metrics = new RelayMetrics({ processMetrics: false });
  const trail = new MemoryAuditLog();
  const audit = observeAuditLog(trail, (event) => metrics.observeAuditEvent(event));
  audit.record({ event: "quota_exceeded", scope: "user" });
  audit.record({ event: "domain_mismatch", reason: "sender_domain_disabled" });
  audit.record({ event: "domain_mismatch" });
  audit.record({ event: "rate_limit", scope: "email" });
  audit.record({ event: "rate_limit", reason: "connection_limit" });
  audit.record({ event: "security_tls_failed", port: "submission" });
  audit.record({ event: "auth_attempt", method: "xoauth2", success: false, reason: "Bad Thing!" });
  assert.equal(trail.events.length, 7);
  assert.equal(await value(metrics, "relay_messages_refused_total", { reason: "quota" }), 1);
  assert.equal(
    await value(metrics, "relay_messages_refused_total", { reason: "domain_disabled" }),
    1,
  );
  assert.equal(
    await value(metrics, "relay_messages_refused_total", { reason: "domain_mismatch" }),
    1,
  );
  assert.equal(await value(metrics, "relay_rate_limit_refusals_total", { scope: "email" }), 1);
  assert.equal(await value(metrics, "relay_rate_limit_refusals_total", { scope: "connection" }), 1);
  assert.equal(
    await value(metrics, "relay_tls_handshake_failures_total", { listener: "submission" }),
    1,
  );
  // A label value that is not a plain token is folded, so clients cannot mint series.
  assert.equal(
    await value(metrics, "relay_auth_attempts_total", { mechanism: "XOAUTH2", outcome: "failure" }),
    1,
  );

  trail.healthy = false;
  assert.equal(audit.healthy, false, "health reads through");
});

Deno.test("an instrumented backend times each attempt; a rejection counts its recipients as deferred", async () => {
  const metrics = new RelayMetrics({ processMetrics: false });
  let fail = false;
  const backend: DeliveryBackend = {
    name: "test",
    deliver(_envelope, _data, recipients) {
      if (fail) return Promise.reject(new Error("connection refused"));
      return Promise.resolve(recipients.map((recipient, i) => ({
        recipient,
        status: i === 0 ? "delivered" as const : "failed" as const,
        reply: "x",
      })));
    },
    close: () => Promise.resolve(),
  };
  const wrapped = metrics.instrumentBackend(backend);
  const envelope = {} as Parameters<DeliveryBackend["deliver"]>[0];
  await wrapped.deliver(envelope, new Uint8Array(), ["a@x.test", "b@x.test"]);
  fail = true;
  await assert.rejects(wrapped.deliver(envelope, new Uint8Array(), ["c@x.test", "d@x.test"]));
  assert.equal(await value(metrics, "relay_delivery_attempts_total", { outcome: "delivered" }), 1);
  assert.equal(await value(metrics, "relay_delivery_attempts_total", { outcome: "failed" }), 1);
  assert.equal(await value(metrics, "relay_delivery_attempts_total", { outcome: "deferred" }), 2);
  const text = await metrics.text();
  assert.match(text, /^relay_delivery_duration_seconds_count 2$/m);
  assert.equal(wrapped.name, "test");
});
