import assert from "node:assert/strict";
import { Lockout } from "../policy/lockout.ts";
import { MemoryStateStore } from "../state/mod.ts";
import { adminHandler } from "./admin_server.ts";
import { RelayMetrics } from "./metrics.ts";

Deno.test("admin /limits: token-protected; GET shows and DELETE lifts a lockout", async () => {
  const store = new MemoryStateStore();
  const lockout = new Lockout({ store });
  const handle = adminHandler({
    token: "0123456789abcdef-token",
    metrics: new RelayMetrics(),
    ready: [],
    limits: lockout,
  });
  const call = (method: string, path: string, token?: string) =>
    handle(
      new Request(`http://admin${path}`, {
        method,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      }),
    );
  try {
    for (let i = 0; i < 5; i++) {
      const ticket = await lockout.begin({
        ip: "192.0.2.1",
        account: "a@x.example",
        kind: "password",
      });
      if (ticket.allowed) await ticket.finish("failure");
    }
    assert.equal((await call("GET", "/limits/192.0.2.1")).status, 401);
    assert.equal(
      (await call("DELETE", "/limits/192.0.2.1", "wrong-token-wrong-token")).status,
      401,
    );
    const shown = await call("GET", "/limits/a%40x.example", "0123456789abcdef-token");
    assert.equal(shown.status, 200);
    const body = await shown.json();
    assert.equal(body.target, "a@x.example");
    assert.deepEqual(body.blocks.map((b: { scope: string; with: string }) => [b.scope, b.with]), [
      ["pair", "192.0.2.1"],
    ]);
    const lifted = await call("DELETE", "/limits/192.0.2.1", "0123456789abcdef-token");
    assert.equal((await lifted.json()).blocks.length, 1);
    assert.deepEqual((await lockout.status("192.0.2.1")).blocks, []);
    assert.equal((await call("POST", "/limits/192.0.2.1", "0123456789abcdef-token")).status, 405);
    assert.equal((await call("GET", "/limits/", "0123456789abcdef-token")).status, 400);
  } finally {
    await store.close();
  }
});
