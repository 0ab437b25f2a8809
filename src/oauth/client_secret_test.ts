import assert from "node:assert/strict";
import { argon2id } from "hash-wasm";
import { cachedSecretVerifier, hashSecretSsha512, verifySecretHash } from "./client_secret.ts";

Deno.test("verifySecretHash checks SSHA512 and argon2id hashes", async () => {
  const ssha = hashSecretSsha512("s3cret");
  assert.match(ssha, /^\{SSHA512\}/);
  assert.ok(await verifySecretHash("s3cret", ssha));
  assert.ok(!await verifySecretHash("s3cret!", ssha));

  const encoded = await argon2id({
    password: "s3cret",
    salt: crypto.getRandomValues(new Uint8Array(16)),
    parallelism: 1,
    iterations: 1,
    memorySize: 64,
    hashLength: 32,
    outputType: "encoded",
  });
  assert.ok(await verifySecretHash("s3cret", `{ARGON2ID}${encoded}`));
  assert.ok(!await verifySecretHash("wrong", `{ARGON2ID}${encoded}`));

  assert.ok(!await verifySecretHash("s3cret", "{PLAIN}s3cret"), "plain text is never accepted");
  assert.ok(!await verifySecretHash("s3cret", "{SSHA512}AAAA"));
  assert.ok(!await verifySecretHash("s3cret", "{ARGON2ID}garbage"));
});

Deno.test("cachedSecretVerifier remembers successes only, for a while", async () => {
  let calls = 0;
  let now = 0;
  const verify = cachedSecretVerifier((secret) => {
    calls++;
    return Promise.resolve(secret === "good");
  }, { ttlMs: 1000, now: () => now });
  assert.ok(await verify("good", "h"));
  assert.ok(await verify("good", "h"));
  assert.equal(calls, 1);
  assert.ok(!await verify("bad", "h"));
  assert.ok(!await verify("bad", "h"));
  assert.equal(calls, 3);
  assert.ok(await verify("good", "other-hash"));
  assert.equal(calls, 4);
  now = 1001;
  assert.ok(await verify("good", "h"));
  assert.equal(calls, 5);
});
