import assert from "node:assert/strict";
import { MemoryStateStore } from "../state/mod.ts";
import { rateLimitSchema } from "../config/limits_schema.ts";
import {
  AuthRateLimiter,
  authRateLimiterOptions,
  CredentialFingerprinter,
  IpRateLimiter,
  oauthRateLimitHook,
  observeOAuthLogins,
} from "./mod.ts";

const MINUTE = 60_000;

function setup(options: Partial<ConstructorParameters<typeof AuthRateLimiter>[0]> = {}) {
  const clock = { t: 1_700_000_000_000 };
  const now = () => clock.t;
  const store = new MemoryStateStore({ now });
  const limiter = new AuthRateLimiter({ store, ...options });
  return { clock, store, limiter };
}

const fp = new CredentialFingerprinter(new Uint8Array(32).fill(7));

Deno.test("AuthRateLimiter blocks a user after 5 failures in a minute, for 300 s", async () => {
  const { clock, store, limiter } = setup();
  for (let i = 0; i < 5; i++) {
    // A different address each time: the user's own counter does the blocking.
    const attempt = { ip: `192.0.2.${i}`, email: "Bob@Example.COM" };
    assert.deepEqual(await limiter.check(attempt), { allowed: true }, `attempt ${i + 1}`);
    await limiter.recordFailure({
      ...attempt,
      credentialFingerprint: fp.fingerprint("bob", `g${i}`),
    });
    clock.t += 1000;
  }
  const refused = await limiter.check({ ip: "198.51.100.9", email: "bob@example.com" });
  assert.deepEqual(refused, { allowed: false, scope: "email", retryAfterSeconds: 299 });
  // Another user from a fresh address is unaffected.
  assert.deepEqual(await limiter.check({ ip: "198.51.100.9", email: "amy@example.com" }), {
    allowed: true,
  });
  clock.t += 299_000;
  assert.deepEqual(await limiter.check({ ip: "198.51.100.9", email: "bob@example.com" }), {
    allowed: true,
  }, "the block expires");
  await store.close();
});

Deno.test("AuthRateLimiter limits one address across many user names", async () => {
  const { store, limiter } = setup({ perMinute: 3 });
  for (let i = 0; i < 3; i++) {
    await limiter.recordFailure({ ip: "203.0.113.5", email: `user${i}@example.org` });
  }
  const refused = await limiter.check({ ip: "203.0.113.5", email: "someone@else.net" });
  assert.equal(refused.allowed, false);
  assert.equal(!refused.allowed && refused.scope, "ip");
  assert.equal(
    (await limiter.check({ ip: "203.0.113.6", email: "user0@example.org" })).allowed,
    true,
  );
  await store.close();
});

Deno.test("AuthRateLimiter windows roll over: 4 failures a minute never block, 20 an hour do", async () => {
  const { clock, store, limiter } = setup();
  let failures = 0;
  // 4 per minute stays under the per-minute limit of 5...
  for (let minute = 0; minute < 5; minute++) {
    for (let i = 0; i < 4; i++) {
      const attempt = { ip: "192.0.2.1", email: "carol@example.com" };
      assert.equal((await limiter.check(attempt)).allowed, true, `failure ${failures + 1}`);
      await limiter.recordFailure(attempt);
      failures++;
      clock.t += 15_000;
    }
    clock.t += 2 * MINUTE; // let the sliding minute drain
  }
  // ...but the 20th in the hour blocks, for longer than 300 s: until the hour drains.
  const refused = await limiter.check({ ip: "192.0.2.1", email: "carol@example.com" });
  assert.equal(refused.allowed, false);
  assert.ok(!refused.allowed && refused.retryAfterSeconds > 300, JSON.stringify(refused));
  clock.t += (!refused.allowed ? refused.retryAfterSeconds : 0) * 1000;
  assert.equal(
    (await limiter.check({ ip: "192.0.2.1", email: "carol@example.com" })).allowed,
    true,
  );
  await store.close();
});

Deno.test("AuthRateLimiter counts a repeated identical wrong password once", async () => {
  const { clock, store, limiter } = setup();
  const stale = fp.fingerprint("dave@example.com", "old-password");
  // A mail client retrying a stale stored password in a tight loop.
  for (let i = 0; i < 50; i++) {
    const attempt = { ip: "192.0.2.7", email: "dave@example.com" };
    assert.equal((await limiter.check(attempt)).allowed, true, `retry ${i + 1}`);
    await limiter.recordFailure({ ...attempt, credentialFingerprint: stale });
    clock.t += 100;
  }
  // The stale password counted once: a guesser's 4 different passwords make 5.
  for (let i = 0; i < 4; i++) {
    await limiter.recordFailure({
      ip: "198.51.100.1",
      email: "dave@example.com",
      credentialFingerprint: fp.fingerprint("dave@example.com", `guess${i}`),
    });
  }
  const refused = await limiter.check({ ip: "198.51.100.2", email: "dave@example.com" });
  assert.equal(!refused.allowed && refused.scope, "email");
  await store.close();
});

Deno.test("AuthRateLimiter: successes never count, and clear the user's failures", async () => {
  const { store, limiter } = setup();
  const attempt = { ip: "192.0.2.9", email: "erin@example.com" };
  for (let i = 0; i < 100; i++) await limiter.recordSuccess(attempt);
  assert.equal((await limiter.check(attempt)).allowed, true);
  for (let i = 0; i < 4; i++) await limiter.recordFailure({ ...attempt, ip: `10.0.0.${i}` });
  await limiter.recordSuccess(attempt);
  for (let i = 0; i < 4; i++) await limiter.recordFailure({ ...attempt, ip: `10.0.1.${i}` });
  assert.equal((await limiter.check(attempt)).allowed, true, "8 failures, but a success between");
  // The address's own count is not laundered by a success: 4 + 1 blocks it.
  for (let i = 0; i < 4; i++) {
    await limiter.recordFailure({ ip: "192.0.2.50", email: `v${i}@example.net` });
  }
  await limiter.recordSuccess({ ip: "192.0.2.50", email: "mine@example.net" });
  await limiter.recordFailure({ ip: "192.0.2.50", email: "v9@example.net" });
  const refused = await limiter.check({ ip: "192.0.2.50", email: "mine@example.net" });
  assert.equal(!refused.allowed && refused.scope, "ip");
  await store.close();
});

Deno.test("AuthRateLimiter per-domain limit catches a spray from many addresses", async () => {
  const { clock, store, limiter } = setup({ perDomainPerMinute: 10, blockSeconds: 60 });
  for (let i = 0; i < 10; i++) {
    await limiter.recordFailure({ ip: `203.0.113.${i}`, email: `u${i}@Tenant.example` });
  }
  const refused = await limiter.check({ ip: "192.0.2.200", email: "boss@tenant.example" });
  assert.deepEqual(refused, { allowed: false, scope: "domain", retryAfterSeconds: 60 });
  assert.equal(
    (await limiter.check({ ip: "192.0.2.200", email: "a@other.example" })).allowed,
    true,
  );
  clock.t += 60_000;
  assert.equal(
    (await limiter.check({ ip: "192.0.2.200", email: "boss@tenant.example" })).allowed,
    true,
  );
  await store.close();
});

Deno.test("AuthRateLimiter: limits of 0 and enabled=false turn it off", async () => {
  const config = rateLimitSchema.parse({ enabled: false });
  const { store, limiter } = setup(authRateLimiterOptions(config));
  assert.equal(limiter.enabled, false);
  for (let i = 0; i < 50; i++) {
    await limiter.recordFailure({ ip: "192.0.2.1", email: "x@y.example" });
  }
  assert.equal((await limiter.check({ ip: "192.0.2.1", email: "x@y.example" })).allowed, true);
  assert.equal(store.size, 0);
  await store.close();
});

Deno.test("AuthRateLimiter keeps store keys short for absurd user names", async () => {
  const { store, limiter } = setup({ perMinute: 2 });
  const huge = "a".repeat(10_000);
  await limiter.recordFailure({ ip: "192.0.2.1", email: huge });
  await limiter.recordFailure({ ip: "192.0.2.2", email: huge });
  const refused = await limiter.check({ ip: "192.0.2.3", email: huge });
  assert.equal(!refused.allowed && refused.scope, "email");
  await store.close();
});

Deno.test("CredentialFingerprinter is keyed, per user, and reveals no password", () => {
  const a = new CredentialFingerprinter(new Uint8Array(32).fill(1));
  const b = new CredentialFingerprinter(new Uint8Array(32).fill(2));
  assert.equal(a.fingerprint("Bob@x.example", "pw"), a.fingerprint("bob@x.example", "pw"));
  assert.notEqual(a.fingerprint("bob@x.example", "pw"), a.fingerprint("amy@x.example", "pw"));
  assert.notEqual(a.fingerprint("bob@x.example", "pw"), b.fingerprint("bob@x.example", "pw"));
  assert.ok(!a.fingerprint("bob@x.example", "hunter2").includes("hunter2"));
  assert.throws(() => new CredentialFingerprinter(new Uint8Array(8)), RangeError);
});

Deno.test("OAuth adapters: the hook asks the limiter, audit events feed it", async () => {
  const { store, limiter } = setup();
  const register = new IpRateLimiter({
    store,
    limit: 2,
    windowMs: 3_600_000,
    name: "oauth_register",
  });
  const hook = oauthRateLimitHook({ login: limiter, register });
  const seen: unknown[] = [];
  const audit = observeOAuthLogins(limiter, (e) => seen.push(e));
  const login = { action: "login" as const, ip: "192.0.2.1", email: "fay@example.com" };
  for (let i = 0; i < 5; i++) {
    assert.equal(await hook(login), true);
    audit({ event: "oauth.login", outcome: "failure", reason: "invalid_credentials", ...login });
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.equal(await hook(login), false);
  assert.equal(seen.length, 5, "events are passed on");
  // Failures that are not about the credentials do not count.
  const other = { action: "login" as const, ip: "192.0.2.2", email: "gus@example.com" };
  for (let i = 0; i < 10; i++) {
    audit({ event: "oauth.login", outcome: "failure", reason: "client_domain", ...other });
  }
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(await hook(other), true);
  assert.equal(await hook({ action: "register", ip: "192.0.2.3", email: "" }), true);
  assert.equal(await hook({ action: "register", ip: "192.0.2.3", email: "" }), true);
  assert.equal(await hook({ action: "register", ip: "192.0.2.3", email: "" }), false);
  await store.close();
});
