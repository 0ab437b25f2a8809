/**
 * OAuth2 in SMTP, end to end: the relay runs its embedded authorization
 * server; a native client (oauth4webapi, PKCE, loopback redirect) signs in
 * through a real headless Chromium; nodemailer then sends with XOAUTH2 over
 * SMTPS and STARTTLS, and a raw client uses OAUTHBEARER. Failures follow
 * RFC 7628 / Google's XOAUTH2: a 334 with a JSON status, then 535.
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import * as oauth from "oauth4webapi";
import { launchBrowser } from "./support/browser.ts";
import {
  beginNativeFlow,
  finishNativeFlow,
  INSECURE,
  signInOverHttp,
  startCallbackListener,
} from "./support/oauth_flow.ts";
import { connectClient, startOAuthTestRelay } from "./support/relay.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function b64(text: string): string {
  return encoder.encode(text).toBase64();
}

const startOAuthRelay = () => startOAuthTestRelay();

Deno.test("OAuth2: browser sign-in, then XOAUTH2 (nodemailer) and OAUTHBEARER over SMTP", async (t) => {
  const relay = await startOAuthRelay();
  const listener = startCallbackListener();
  await using browser = await launchBrowser();
  try {
    const server = relay.relay.oauth!;
    const flow = await beginNativeFlow(server.issuer, listener.redirectUri);
    const { as, client } = flow;

    // The user signs in with the same password the relay's PLAIN would check.
    const page = await browser.context.newPage();
    await page.goto(flow.authorizeUrl.href);
    await page.getByLabel("Email address").fill("alice@example.com");
    await page.getByLabel("Password").fill("alice-secret-1");
    await page.getByRole("button", { name: "Sign in" }).click();
    const callbackUrl = await listener.callback;
    await page.close();
    const { tokens } = await finishNativeFlow(flow, callbackUrl);
    const accessToken = tokens.access_token;

    for (const secure of [true, false]) {
      await t.step(`nodemailer XOAUTH2 over ${secure ? "SMTPS" : "STARTTLS"}`, async () => {
        const transport = nodemailer.createTransport({
          host: "127.0.0.1",
          port: secure ? relay.smtpsPort : relay.submissionPort,
          secure,
          requireTLS: !secure,
          auth: { type: "OAuth2", user: "alice@example.com", accessToken },
          tls: { ca: [relay.caPem], servername: "localhost" },
        });
        try {
          const info = await transport.sendMail({
            from: "alice@example.com",
            to: "friend@example.net",
            subject: `xoauth2 ${secure}`,
            text: "sent with a bearer token",
          });
          assert.deepEqual(info.accepted, ["friend@example.net"]);
          assert.match(info.response, /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
        } finally {
          transport.close();
        }
      });
    }
    await relay.waitForOutbox(2);

    await t.step("EHLO after TLS offers XOAUTH2 and OAUTHBEARER", async () => {
      const c = await connectClient(relay, "starttls");
      try {
        assert.deepEqual([...c.authMechanisms].sort(), [
          "LOGIN",
          "OAUTHBEARER",
          "PLAIN",
          "XOAUTH2",
        ]);
      } finally {
        c.close();
      }
    });

    await t.step("OAUTHBEARER (RFC 7628) with initial response, then a message", async () => {
      const c = await connectClient(relay, "implicit");
      try {
        const message = `n,a=alice@example.com,\x01host=localhost\x01port=${relay.smtpsPort}\x01` +
          `auth=Bearer ${accessToken}\x01\x01`;
        const reply = await c.authRaw("OAUTHBEARER", b64(message));
        assert.equal(reply.code, 235);
        assert.equal(reply.enhanced, "2.7.0");
        const sent = await c.send({
          from: "alice@example.com",
          to: ["x@example.net"],
          data: encoder.encode("Subject: bearer\r\n\r\nok\r\n"),
        });
        assert.equal(sent.final?.code, 250);
      } finally {
        await c.quit();
      }
    });

    await t.step("the domain policy applies to token logins", async () => {
      const c = await connectClient(relay, "implicit");
      try {
        const payload = `user=alice@example.com\x01auth=Bearer ${accessToken}\x01\x01`;
        assert.equal((await c.authRaw("XOAUTH2", b64(payload))).code, 235);
        await c.sendLine("MAIL FROM:<alice@company.com>");
        const reply = await c.readReply();
        assert.equal(reply.code, 550);
        assert.equal(
          reply.lines[0],
          "5.7.1 Domain mismatch: authenticated domain (example.com) does not match MAIL FROM domain (company.com)",
        );
      } finally {
        await c.quit();
      }
    });

    await t.step("XOAUTH2 failure: 334 with a JSON status, empty line, 535 5.7.8", async () => {
      const c = await connectClient(relay, "implicit");
      try {
        // Token issued to alice, presented for bob.
        const payload = `user=bob@company.com\x01auth=Bearer ${accessToken}\x01\x01`;
        const challenge = await c.authRaw("XOAUTH2", b64(payload));
        assert.equal(challenge.code, 334);
        const status = JSON.parse(decoder.decode(Uint8Array.fromBase64(challenge.lines[0])));
        assert.equal(status.status, "401");
        await c.sendLine("");
        const reply = await c.readReply();
        assert.equal(reply.code, 535);
        assert.equal(reply.enhanced, "5.7.8");
      } finally {
        await c.quit();
      }
    });

    await t.step("OAUTHBEARER failure names the discovery document, \\x01, 535", async () => {
      const c = await connectClient(relay, "implicit");
      try {
        const tampered = accessToken.slice(0, -4) +
          (accessToken.endsWith("AAAA") ? "BBBB" : "AAAA");
        const challenge = await c.authRaw(
          "OAUTHBEARER",
          b64(`n,a=alice@example.com,\x01auth=Bearer ${tampered}\x01\x01`),
        );
        assert.equal(challenge.code, 334);
        const status = JSON.parse(decoder.decode(Uint8Array.fromBase64(challenge.lines[0])));
        assert.equal(status.status, "invalid_token");
        assert.equal(status.scope, "smtp.send");
        assert.equal(
          status["openid-configuration"],
          `${server.issuer}/.well-known/openid-configuration`,
        );
        await c.sendLine(b64("\x01"));
        const reply = await c.readReply();
        assert.equal(reply.code, 535);
      } finally {
        await c.quit();
      }
    });

    await t.step("a revoked token is refused on the next AUTH", async () => {
      const fresh = await signInOverHttp({
        issuer: server.issuer,
        redirectUri: listener.redirectUri,
        email: "alice@example.com",
        password: "alice-secret-1",
      });
      const payload = b64(`user=alice@example.com\x01auth=Bearer ${fresh.access_token}\x01\x01`);
      const before = await connectClient(relay, "implicit");
      assert.equal((await before.authRaw("XOAUTH2", payload)).code, 235);
      await before.quit();
      const revocation = await oauth.revocationRequest(
        as,
        client,
        oauth.None(),
        fresh.refresh_token,
        INSECURE,
      );
      await oauth.processRevocationResponse(revocation);
      await revocation.body?.cancel();
      const after = await connectClient(relay, "implicit");
      try {
        assert.equal((await after.authRaw("XOAUTH2", payload)).code, 334);
        await after.sendLine("");
        assert.equal((await after.readReply()).code, 535);
      } finally {
        await after.quit();
      }
    });

    await t.step("token checks are audited as token_validation", () => {
      const events = relay.audit.events.filter((e) => e.event === "token_validation");
      assert.ok(events.some((e) => e.success === true && e.email === "alice@example.com"));
      assert.ok(events.some((e) => e.success === false && e.status === "invalid_token"));
      // The browser sign-in is an auth attempt of its own.
      assert.ok(
        relay.audit.events.some((e) =>
          e.event === "auth_attempt" && e.method === "OAUTH_LOGIN" && e.success === true
        ),
      );
    });

    await t.step("no token ever reaches the audit trail", () => {
      const trail = JSON.stringify(relay.audit.events);
      assert.ok(!trail.includes(accessToken));
      assert.ok(
        relay.audit.events.some((e) =>
          e.event === "auth_attempt" && e.method === "XOAUTH2" && e.success === true
        ),
      );
    });
  } finally {
    await browser.close();
    await listener.close();
    await relay.close();
  }
});
