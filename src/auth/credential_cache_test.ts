import assert from "node:assert/strict";
import { CredentialCache } from "./credential_cache.ts";

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => t += ms };
}

Deno.test("CredentialCache hits only for the same user, password and stored hash", () => {
  const cache = new CredentialCache({ ttlMs: 60_000, maxEntries: 10 });
  assert.equal(cache.has("a@example.com", "pw", "{H}1"), false);
  cache.remember("a@example.com", "pw", "{H}1");
  assert.equal(cache.has("a@example.com", "pw", "{H}1"), true);
  assert.equal(cache.has("a@example.com", "pw2", "{H}1"), false, "other password");
  assert.equal(cache.has("b@example.com", "pw", "{H}1"), false, "other user");
  assert.equal(cache.has("a@example.compw", "", "{H}1"), false, "user/password boundary");
  assert.equal(cache.has("a@example.com", "pw", "{H}2"), false, "hash changed in the file");
  assert.equal(cache.has("a@example.com", "pw", "{H}1"), false, "a stale entry is dropped");
  assert.equal(cache.size, 0);
});

Deno.test("CredentialCache entries expire after the TTL", () => {
  const time = clock();
  const cache = new CredentialCache({ ttlMs: 1000, maxEntries: 10, now: time.now });
  cache.remember("a@example.com", "pw", "{H}1");
  time.advance(999);
  assert.equal(cache.has("a@example.com", "pw", "{H}1"), true);
  time.advance(1);
  assert.equal(cache.has("a@example.com", "pw", "{H}1"), false);
});

Deno.test("CredentialCache evicts the least recently used entry when full", () => {
  const cache = new CredentialCache({ ttlMs: 60_000, maxEntries: 2 });
  cache.remember("a@x.org", "pw", "h");
  cache.remember("b@x.org", "pw", "h");
  assert.equal(cache.has("a@x.org", "pw", "h"), true, "touch a: b is now the oldest");
  cache.remember("c@x.org", "pw", "h");
  assert.equal(cache.size, 2);
  assert.equal(cache.has("b@x.org", "pw", "h"), false);
  assert.equal(cache.has("a@x.org", "pw", "h"), true);
  assert.equal(cache.has("c@x.org", "pw", "h"), true);
});

Deno.test("CredentialCache with a TTL of 0 keeps nothing", () => {
  const cache = new CredentialCache({ ttlMs: 0, maxEntries: 10 });
  cache.remember("a@x.org", "pw", "h");
  assert.equal(cache.enabled, false);
  assert.equal(cache.has("a@x.org", "pw", "h"), false);
  assert.equal(cache.size, 0);
});
