import assert from "node:assert/strict";
import { MemoryStateStore } from "../state/mod.ts";
import { Lockout, type LockoutOptions, type LoginAttempt, networkOf } from "./lockout.ts";
import { oauthLockout } from "./oauth_lockout.ts";

function setup(options: Partial<LockoutOptions> = {}) {
  let now = Date.UTC(2026, 10, 29, 12, 0, 0);
  const store = new MemoryStateStore({ now: () => now });
  const lockout = new Lockout({ store, now: () => now, domainDelayMs: 50, ...options });
  return { store, lockout, advance: (ms: number) => now += ms };
}

/** One attempt to its end; the refusal scope, or the outcome passed. */
async function attempt(lockout: Lockout, a: LoginAttempt, outcome: "success" | "failure") {
  const ticket = await lockout.begin(a);
  if (!ticket.allowed) return ticket.scope;
  await ticket.finish(outcome);
  return outcome;
}

const pw = (ip: string, account: string): LoginAttempt => ({ ip, account, kind: "password" });

Deno.test("Lockout: 5 failures block the (address, account) pair only", async () => {
  const { store, lockout } = setup();
  try {
    for (let i = 0; i < 5; i++) {
      assert.equal(
        await attempt(lockout, pw("192.0.2.1", "alice@example.com"), "failure"),
        "failure",
      );
    }
    assert.equal(await attempt(lockout, pw("192.0.2.1", "alice@example.com"), "success"), "pair");
    // Another address, and another account from the same address, go on.
    assert.equal(
      await attempt(lockout, pw("198.51.100.7", "alice@example.com"), "success"),
      "success",
    );
    assert.equal(await attempt(lockout, pw("192.0.2.1", "bob@example.com"), "success"), "success");
    const status = await lockout.status("192.0.2.1");
    assert.deepEqual(status.blocks.map((b) => b.scope), ["pair"]);
    assert.ok(
      status.blocks[0].retryAfterSeconds > 250 && status.blocks[0].retryAfterSeconds <= 300,
    );
  } finally {
    await store.close();
  }
});

Deno.test("Lockout: in-flight attempts count, so 8 parallel get no more than the limit", async () => {
  const { store, lockout } = setup();
  try {
    const tickets = await Promise.all(
      Array.from({ length: 8 }, () => lockout.begin(pw("192.0.2.1", "alice@example.com"))),
    );
    assert.equal(tickets.filter((t) => t.allowed).length, 5);
    assert.ok(tickets.every((t) => t.allowed || t.scope === "pair"));
    // A success gives its reservation back: the next attempt fits again.
    const first = tickets.find((t) => t.allowed)!;
    if (first.allowed) await first.finish("success");
    assert.equal((await lockout.begin(pw("192.0.2.1", "alice@example.com"))).allowed, true);
  } finally {
    await store.close();
  }
});

Deno.test("Lockout: spraying many accounts blocks the address, except trusted networks", async () => {
  const { store, lockout } = setup({ trusted: (ip) => ip.startsWith("10.") });
  try {
    for (let i = 0; i < 10; i++) {
      await attempt(lockout, pw("192.0.2.9", `user${i}@example.com`), "failure");
      await attempt(lockout, pw("10.1.1.1", `user${i}@example.com`), "failure");
    }
    assert.equal((await lockout.admitAddress("192.0.2.9"))?.scope, "address");
    assert.equal(
      await attempt(lockout, pw("192.0.2.9", "alice@example.com"), "success"),
      "address",
    );
    assert.equal(await lockout.admitAddress("10.1.1.1"), null);
    assert.equal(await attempt(lockout, pw("10.1.1.1", "alice@example.com"), "success"), "success");
    // The operator lifts it.
    const lifted = await lockout.clear("192.0.2.9");
    assert.deepEqual(lifted.blocks.map((b) => b.scope), ["address"]);
    assert.equal(await lockout.admitAddress("192.0.2.9"), null);
    // ...and the failures behind it: one more failure does not block it again.
    await attempt(lockout, pw("192.0.2.9", "user99@example.com"), "failure");
    assert.equal(await lockout.admitAddress("192.0.2.9"), null);
  } finally {
    await store.close();
  }
});

Deno.test("Lockout: an account under attack admits only familiar networks", async () => {
  const { store, lockout, advance } = setup();
  try {
    assert.equal(
      await attempt(lockout, pw("203.0.113.5", "alice@example.com"), "success"),
      "success",
    );
    for (let a = 1; a <= 3; a++) {
      for (let i = 0; i < 4; i++) {
        await attempt(lockout, pw(`192.0.2.${a}`, "alice@example.com"), "failure");
      }
    }
    // A new address is refused for alice, even with the right password...
    assert.equal(
      await attempt(lockout, pw("198.51.100.1", "alice@example.com"), "success"),
      "account-unfamiliar",
    );
    // ...while her own network (same /24) goes on, and so do other accounts.
    assert.equal(
      await attempt(lockout, pw("203.0.113.77", "alice@example.com"), "success"),
      "success",
    );
    assert.equal(
      await attempt(lockout, pw("198.51.100.1", "bob@example.com"), "success"),
      "success",
    );
    assert.deepEqual(
      (await lockout.status("Alice@Example.com")).blocks[0].scope,
      "account-unfamiliar",
    );
    // Familiarity fades after 30 days; the attack flag after 15 minutes.
    advance(16 * 60_000);
    assert.equal(
      await attempt(lockout, pw("198.51.100.1", "alice@example.com"), "success"),
      "success",
    );
  } finally {
    await store.close();
  }
});

Deno.test("Lockout: a domain under a spray is slowed down for unfamiliar addresses, never refused", async () => {
  const { store, lockout } = setup({ domainPerMinute: 20 });
  try {
    await lockout.markFamiliar("alice@example.com", "203.0.113.5");
    for (let i = 0; i < 20; i++) {
      await attempt(lockout, pw(`192.0.2.${i}`, `nobody${i}@example.com`), "failure");
    }
    const stranger = await lockout.begin(pw("198.51.100.1", "carol@example.com"));
    assert.ok(stranger.allowed && stranger.delayMs === 50 && stranger.scope === "domain-slow");
    const owner = await lockout.begin(pw("203.0.113.5", "alice@example.com"));
    assert.ok(owner.allowed && owner.delayMs === 0);
  } finally {
    await store.close();
  }
});

Deno.test("Lockout: bearer-token failures are counted apart from passwords", async () => {
  const { store, lockout } = setup();
  const token = { ip: "192.0.2.1", account: "alice@example.com", kind: "token" as const };
  try {
    for (let i = 0; i < 5; i++) assert.equal(await attempt(lockout, token, "failure"), "failure");
    assert.equal(await attempt(lockout, token, "success"), "token");
    assert.equal(
      await attempt(lockout, pw("192.0.2.1", "alice@example.com"), "success"),
      "success",
    );
  } finally {
    await store.close();
  }
});

Deno.test("Lockout: a repeated stale password counts once", async () => {
  const { store, lockout } = setup();
  try {
    for (let i = 0; i < 8; i++) {
      const ticket = await lockout.begin({
        ...pw("192.0.2.1", "alice@example.com"),
        credentialFingerprint: "same",
      });
      assert.ok(ticket.allowed, `attempt ${i}`);
      await ticket.finish("failure");
    }
  } finally {
    await store.close();
  }
});

Deno.test("oauthLockout: the login page reserves, settles on the outcome, and audits refusals", async () => {
  const { store, lockout } = setup();
  const events: Record<string, unknown>[] = [];
  const hooks = oauthLockout({ lockout, record: (e) => events.push(e) });
  const audit = hooks.observe(() => {});
  try {
    for (let i = 0; i < 5; i++) {
      assert.equal(
        await hooks.rateLimit({ action: "login", ip: "192.0.2.1", email: "alice@example.com" }),
        true,
      );
      audit({
        event: "oauth.login",
        ip: "192.0.2.1",
        email: "alice@example.com",
        outcome: "failure",
        reason: "invalid_credentials",
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(
      await hooks.rateLimit({ action: "login", ip: "192.0.2.1", email: "alice@example.com" }),
      false,
    );
    assert.ok(events.some((e) => e.scope === "pair" && e.action === "refused"));
    // The owner elsewhere signs in, which makes her network familiar.
    assert.equal(
      await hooks.rateLimit({ action: "login", ip: "203.0.113.5", email: "alice@example.com" }),
      true,
    );
    audit({
      event: "oauth.login",
      ip: "203.0.113.5",
      email: "alice@example.com",
      outcome: "success",
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal((await lockout.status("alice@example.com")).blocks.length, 1);
  } finally {
    await store.close();
  }
});

Deno.test("networkOf: /24 for IPv4, /64 for IPv6", () => {
  assert.deepEqual(
    ["192.0.2.77", "2001:db8:1:2:3::9", "::ffff:10.1.2.3", "::1", "fe80::1"].map(networkOf),
    ["192.0.2.0/24", "2001:db8:1:2::/64", "10.1.2.0/24", "0:0:0:0::/64", "fe80:0:0:0::/64"],
  );
});
