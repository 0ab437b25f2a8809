import assert from "node:assert/strict";
import { createXoauth2, decodeXoauth2, xoauth2FailureChallenge } from "./xoauth2.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";

Deno.test("decodeXoauth2 reads Google's format", () => {
  assert.deepEqual(decodeXoauth2(enc(`user=alice@example.com\x01auth=Bearer ${TOKEN}\x01\x01`)), {
    type: "done",
    credentials: { kind: "bearer", user: "alice@example.com", token: TOKEN, format: "xoauth2" },
  });
  // The scheme is case-insensitive; pairs may come in any order.
  const step = decodeXoauth2(enc(`auth=bearer ${TOKEN}\x01user=a@b.example\x01\x01`));
  assert.equal(
    step.type === "done" && step.credentials.kind === "bearer" && step.credentials.token,
    TOKEN,
  );
});

Deno.test("decodeXoauth2 reads the prototype's JSON form", () => {
  const json = JSON.stringify({
    user: "alice@example.com",
    authMethod: "XOAUTH2",
    authToken: TOKEN,
  });
  assert.deepEqual(decodeXoauth2(enc(json)), {
    type: "done",
    credentials: {
      kind: "bearer",
      user: "alice@example.com",
      token: TOKEN,
      format: "xoauth2-json",
    },
  });
  const bearer = JSON.stringify({ user: "a@b.example", authToken: `Bearer ${TOKEN}` });
  assert.equal(decodeXoauth2(enc(bearer)).type, "done");
});

Deno.test("decodeXoauth2 refuses malformed messages", () => {
  const bad = [
    `user=alice@example.com\x01auth=Bearer ${TOKEN}\x01`, // one terminator
    `user=alice@example.com\x01auth=Basic abc\x01\x01`,
    `user=alice@example.com\x01auth=Bearer\x01\x01`,
    `user=alice@example.com\x01auth=Bearer two words\x01\x01`,
    `auth=Bearer ${TOKEN}\x01\x01`, // no user
    `user=\x01auth=Bearer ${TOKEN}\x01\x01`,
    `garbage\x01\x01`,
    "{not json",
    JSON.stringify({ user: "a@b.example", authMethod: "PLAIN", authToken: TOKEN }),
    JSON.stringify({ authToken: TOKEN }),
    JSON.stringify([1]),
  ];
  for (const message of bad) {
    assert.equal(decodeXoauth2(enc(message)).type, "malformed", JSON.stringify(message));
  }
  assert.equal(decodeXoauth2(new Uint8Array([0xff, 0xfe])).type, "malformed");
});

Deno.test("createXoauth2 asks for the message when no initial response came", () => {
  const mechanism = createXoauth2();
  assert.equal(mechanism.name, "XOAUTH2");
  assert.deepEqual(mechanism.start(null), { type: "challenge", challenge: new Uint8Array() });
  assert.equal(
    mechanism.next(enc(`user=a@b.example\x01auth=Bearer ${TOKEN}\x01\x01`)).type,
    "done",
  );
  assert.equal(
    createXoauth2().start(enc(`user=a@b.example\x01auth=Bearer x\x01\x01`)).type,
    "done",
  );
});

Deno.test("xoauth2FailureChallenge is Google's JSON with an HTTP status", () => {
  const text = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
  assert.deepEqual(text(xoauth2FailureChallenge("invalid_token", "smtp.send")), {
    status: "401",
    schemes: "bearer",
    scope: "smtp.send",
  });
  assert.equal(text(xoauth2FailureChallenge("insufficient_scope", "smtp.send")).status, "403");
  assert.equal(text(xoauth2FailureChallenge("400", "smtp.send")).status, "400");
});
