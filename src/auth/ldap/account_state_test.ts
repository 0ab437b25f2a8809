import assert from "node:assert/strict";
import { PasswordPolicyControl } from "ldapts";
import {
  accountStateOf,
  bindRefusal,
  describeAccountState,
  parseGeneralizedTime,
} from "./account_state.ts";
import { passwordModifyRequest } from "./password_write.ts";

const NOW = new Date("2026-11-29T12:00:00Z");

Deno.test("accountStateOf reads 389 DS and OpenLDAP attributes, any case", () => {
  const entry = (attrs: Record<string, string>) => ({ dn: "uid=a,dc=x", ...attrs });
  assert.deepEqual(accountStateOf(entry({}), NOW), { kind: "active" });
  assert.deepEqual(accountStateOf(entry({ nsaccountlock: "TRUE" }), NOW), {
    kind: "locked",
    reason: "nsAccountLock is true",
    attribute: "nsAccountLock",
  });
  assert.deepEqual(accountStateOf(entry({ nsAccountLock: "false" }), NOW), { kind: "active" });
  assert.equal(
    describeAccountState(accountStateOf(entry({ pwdAccountLockedTime: "20261129110000Z" }), NOW)),
    "locked: pwdAccountLockedTime is 20261129110000Z (locked by the password policy)",
  );
  assert.equal(
    accountStateOf(entry({ passwordExpirationTime: "20261129115959Z" }), NOW).kind,
    "expired",
  );
  assert.equal(
    accountStateOf(entry({ passwordExpirationTime: "20261129120001Z" }), NOW).kind,
    "active",
  );
});

Deno.test("parseGeneralizedTime takes LDAP times and refuses the rest", () => {
  assert.equal(parseGeneralizedTime("20000101000000Z")?.toISOString(), "2000-01-01T00:00:00.000Z");
  assert.equal(parseGeneralizedTime("202611291230Z")?.toISOString(), "2026-11-29T12:30:00.000Z");
  assert.equal(
    parseGeneralizedTime("20261129123001.123Z")?.toISOString(),
    "2026-11-29T12:30:01.000Z",
  );
  assert.equal(parseGeneralizedTime("2026-11-29"), undefined);
  assert.equal(parseGeneralizedTime("20261129123001+0100"), undefined);
});

Deno.test("bindRefusal: the policy control first, then 389 DS result codes", () => {
  const control = (error?: number) => new PasswordPolicyControl({ value: { error } });
  assert.deepEqual(bindRefusal(49, control(0)), {
    kind: "expired",
    reason: "password policy response passwordExpired",
  });
  assert.equal(bindRefusal(49, control(1)).kind, "locked");
  assert.equal(bindRefusal(53, undefined).kind, "locked");
  assert.equal(bindRefusal(19, undefined).kind, "locked");
  assert.deepEqual(bindRefusal(49, undefined), { kind: "invalid" });
  assert.deepEqual(bindRefusal(49, control(undefined)), { kind: "invalid" });
});

Deno.test("passwordModifyRequest is the RFC 3062 BER value", () => {
  assert.deepEqual(
    [...passwordModifyRequest("uid=a", "pé")],
    [0x30, 0x0c, 0x80, 0x05, ...new TextEncoder().encode("uid=a"), 0x82, 0x03, 0x70, 0xc3, 0xa9],
  );
});
