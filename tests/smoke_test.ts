import { deepStrictEqual as assertEquals } from "node:assert/strict";
import nodemailer from "nodemailer";
import { connectClient, startTestRelay } from "./support/relay.ts";

Deno.test("smoke: our client over SMTPS and nodemailer over STARTTLS reach the outbox", async () => {
  const t = await startTestRelay();
  try {
    const client = await connectClient(t);
    const auth = await client.auth({ username: "alice@example.com", password: "alice-secret-1" });
    assertEquals(auth.code, 235);
    const res = await client.send({
      from: "alice@example.com",
      to: ["x@dest.org"],
      data: new TextEncoder().encode("Subject: hi\r\n\r\nhello\r\n"),
    });
    assertEquals(res.final?.code, 250);
    await client.quit();
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: t.submissionPort,
      secure: false,
      requireTLS: true,
      auth: { user: "bob@company.com", pass: "bob-secret-2" },
      tls: { ca: [t.caPem], servername: "localhost" },
    });
    const info = await transport.sendMail({
      from: "bob@company.com",
      to: "y@dest.org",
      subject: "nm",
      text: "hi",
    });
    transport.close();
    assertEquals(info.accepted, ["y@dest.org"]);
    const files = await t.waitForOutbox(2);
    assertEquals(files.length, 2);
  } finally {
    await t.close();
  }
});
