/**
 * An external IdP's tokens over SMTP: XOAUTH2 with a real ES256 JWT from a
 * test IdP (remote JWKS). The address in the token counts only when the IdP
 * says it verified it; a refusal is a 535 and its reason is in the audit
 * trail.
 */
import assert from "node:assert/strict";
import { startTestIdp } from "./support/idp.ts";
import { connectClient, startTestRelay } from "./support/relay.ts";

function xoauth2(user: string, token: string): string {
  return new TextEncoder().encode(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toBase64();
}

Deno.test("external IdP over SMTP: email_verified is required, and the audit says why not", async () => {
  const idp = await startTestIdp();
  const t = await startTestRelay({
    config: {
      oauth: { enabled: false, external: { jwks_url: `${idp.issuer}/jwks`, issuer: idp.issuer } },
    },
  });
  try {
    const verified = await idp.sign({ email: "alice@example.com", email_verified: true });
    const client = await connectClient(t);
    try {
      const reply = await client.authRaw("XOAUTH2", xoauth2("alice@example.com", verified));
      assert.equal(reply.code, 235);
    } finally {
      await client.quit();
    }

    const unverified = await idp.sign({ email: "alice@example.com" });
    const refused = await connectClient(t);
    try {
      const challenge = await refused.authRaw("XOAUTH2", xoauth2("alice@example.com", unverified));
      assert.equal(challenge.code, 334);
      await refused.sendLine("");
      const final = await refused.readReply();
      assert.equal(final.code, 535);
      assert.match(final.lines[0], /^5\.7\.8 /);
    } finally {
      await refused.quit();
    }
    const validations = t.audit.events.filter((e) => e.event === "token_validation");
    assert.deepEqual(validations.map((e) => e.success), [true, false]);
    assert.equal(validations[1].status, "invalid_token");
    assert.equal(
      validations[1].detail,
      "email address not verified by the issuer (email_verified is not true)",
    );
    assert.ok(!JSON.stringify(t.audit.events).includes(unverified), "no token in the trail");
  } finally {
    await t.close();
    await idp.close();
  }
});
