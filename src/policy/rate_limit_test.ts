import assert from "node:assert/strict";
import { CredentialFingerprinter } from "./rate_limit.ts";

Deno.test("CredentialFingerprinter is keyed, per user, and reveals no password", () => {
  const a = new CredentialFingerprinter(new Uint8Array(32).fill(1));
  const b = new CredentialFingerprinter(new Uint8Array(32).fill(2));
  assert.equal(a.fingerprint("Bob@x.example", "pw"), a.fingerprint("bob@x.example", "pw"));
  assert.notEqual(a.fingerprint("bob@x.example", "pw"), a.fingerprint("amy@x.example", "pw"));
  assert.notEqual(a.fingerprint("bob@x.example", "pw"), b.fingerprint("bob@x.example", "pw"));
  assert.ok(!a.fingerprint("bob@x.example", "hunter2").includes("hunter2"));
  assert.throws(() => new CredentialFingerprinter(new Uint8Array(8)), RangeError);
});
