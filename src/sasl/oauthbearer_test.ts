import assert from "node:assert/strict";
import {
  createOAuthBearer,
  decodeOAuthBearer,
  isOAuthFailureAck,
  oauthbearerFailureChallenge,
  parseOAuthBearer,
} from "./oauthbearer.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";

Deno.test("decodeOAuthBearer reads RFC 7628 messages", () => {
  // RFC 7628 4.1, with the user from the GS2 header.
  const full =
    `n,a=user@example.com,\x01host=server.example.com\x01port=587\x01auth=Bearer ${TOKEN}\x01\x01`;
  assert.deepEqual(decodeOAuthBearer(enc(full)), {
    type: "done",
    credentials: { kind: "bearer", user: "user@example.com", token: TOKEN, format: "oauthbearer" },
  });
  assert.deepEqual(parseOAuthBearer(enc(full)), {
    user: "user@example.com",
    token: TOKEN,
    host: "server.example.com",
    port: 587,
  });
  // No authzid: the user comes from the token alone.
  const anonymous = decodeOAuthBearer(enc(`n,,\x01auth=Bearer ${TOKEN}\x01\x01`));
  assert.ok(anonymous.type === "done" && anonymous.credentials.kind === "bearer");
  assert.equal(anonymous.credentials.user, null);
  // saslname escapes.
  const escaped = decodeOAuthBearer(enc(`y,a=odd=2Cname=3D@example.com,\x01auth=Bearer x\x01\x01`));
  assert.ok(escaped.type === "done" && escaped.credentials.kind === "bearer");
  assert.equal(escaped.credentials.user, "odd,name=@example.com");
});

Deno.test("decodeOAuthBearer refuses malformed messages", () => {
  const bad = [
    `p=tls-unique,a=u@example.com,\x01auth=Bearer ${TOKEN}\x01\x01`, // channel binding
    `a=u@example.com,\x01auth=Bearer ${TOKEN}\x01\x01`, // no flag
    `n,a=u@example.com,auth=Bearer ${TOKEN}\x01\x01`, // no kvsep after header
    `n,a=u@example.com,\x01auth=Bearer ${TOKEN}\x01`, // one terminator
    `n,a=u@example.com,\x01host=x\x01\x01`, // no auth
    `n,a=u@example.com,\x01auth=Basic abc\x01\x01`,
    `n,a=bad=2Xname,\x01auth=Bearer ${TOKEN}\x01\x01`,
    `n,a=,\x01auth=Bearer ${TOKEN}\x01\x01`,
    `n,a=u@example.com,\x01port=smtp\x01auth=Bearer ${TOKEN}\x01\x01`,
    `n,a=u@example.com,\x01auth=Bearer a\x01auth=Bearer b\x01\x01`,
    `n,a=u@example.com,\x01bad-key=1\x01auth=Bearer ${TOKEN}\x01\x01`,
    "\x01",
  ];
  for (const message of bad) {
    assert.equal(decodeOAuthBearer(enc(message)).type, "malformed", JSON.stringify(message));
  }
});

Deno.test("createOAuthBearer and the failure exchange", () => {
  const mechanism = createOAuthBearer();
  assert.equal(mechanism.name, "OAUTHBEARER");
  assert.deepEqual(mechanism.start(null), { type: "challenge", challenge: new Uint8Array() });
  assert.equal(mechanism.next(enc(`n,,\x01auth=Bearer ${TOKEN}\x01\x01`)).type, "done");

  const challenge = oauthbearerFailureChallenge(
    "invalid_token",
    "smtp.send",
    "http://localhost:9000/.well-known/openid-configuration",
  );
  assert.equal(
    new TextDecoder().decode(challenge),
    '{"status":"invalid_token","scope":"smtp.send",' +
      '"openid-configuration":"http://localhost:9000/.well-known/openid-configuration"}',
  );
  assert.equal(
    new TextDecoder().decode(oauthbearerFailureChallenge("insufficient_scope", "smtp.send")),
    '{"status":"insufficient_scope","scope":"smtp.send"}',
  );
  assert.ok(isOAuthFailureAck(enc("\x01")));
  assert.ok(isOAuthFailureAck(new Uint8Array()));
  assert.ok(!isOAuthFailureAck(enc("n,,\x01")));
});
