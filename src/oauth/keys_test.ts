import assert from "node:assert/strict";
import { jwtVerify, SignJWT } from "jose";
import { SigningKeys } from "./keys.ts";
import { signAccessToken } from "./tokens.ts";

const DAY = 86_400_000;

Deno.test("SigningKeys rotates and keeps retired keys until their tokens expire", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = Date.UTC(2026, 0, 1);
    const file = `${dir}/nested/keys.json`;
    const options = { file, rotateDays: 30, accessTokenTtlSeconds: 3600, now: () => now };
    const keys = await SigningKeys.open(options);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const [first] = keys.kids();
    const grant = {
      issuer: "http://x",
      audience: "smtp",
      clientId: "c",
      email: "a@example.com",
      domain: "example.com",
      scope: "smtp.send",
      sid: "s",
      ttlSeconds: 3600,
    };
    const old = await signAccessToken(keys, grant, now);

    // Reopening keeps the same key.
    assert.deepEqual((await SigningKeys.open(options)).kids(), [first]);

    // Thirty days later the next signature rotates first.
    now += 30 * DAY;
    const fresh = await signAccessToken(keys, grant, now);
    const kids = keys.kids();
    assert.equal(kids.length, 2);
    assert.equal(kids[0], first);
    assert.notEqual(kids[1], first);
    assert.deepEqual(keys.publicJwks().keys.map((k) => k.kid), kids);
    // Tokens of both keys verify (with a clock inside each token's lifetime).
    await jwtVerify(old.token, keys.getKey, { currentDate: new Date(old.iat * 1000) });
    await jwtVerify(fresh.token, keys.getKey, { currentDate: new Date(now) });

    // Once every token of the old key has expired, it leaves the JWKS and the file.
    now += 3600_000 + 301_000;
    assert.deepEqual(keys.publicJwks().keys.map((k) => k.kid), [kids[1]]);
    const reopened = await SigningKeys.open(options);
    assert.deepEqual(reopened.kids(), [kids[1]]);
    const stored = JSON.parse(await Deno.readTextFile(file));
    assert.equal(stored.keys.length, 1);
    await assert.rejects(
      jwtVerify(old.token, keys.getKey, { currentDate: new Date(old.iat * 1000) }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SigningKeys picks up a rotation made by another process", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/keys.json`;
    const base = { file, rotateDays: 0, accessTokenTtlSeconds: 3600 };
    const server = await SigningKeys.open(base);
    const relay = await SigningKeys.open({ ...base, readOnly: true });
    // `relay oauth keys rotate` in another process:
    const cli = await SigningKeys.open(base);
    const kid = await cli.rotate();
    const { key } = await cli.signingKey();
    const grantToken = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid })
      .sign(key);
    // Unknown kid: the read-only relay re-reads the file and finds it.
    await jwtVerify(grantToken, relay.getKey);
    await jwtVerify(grantToken, server.getKey);
    await assert.rejects(
      SigningKeys.open({ ...base, file: `${dir}/missing.json`, readOnly: true }),
    );
    await assert.rejects(relay.rotate());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
