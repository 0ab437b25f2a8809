/**
 * Several certificates by SNI (`[[tls.certificates]]`): a client asking for
 * another domain's name gets that domain's certificate, on SMTPS and after
 * STARTTLS alike; every other name gets the main certificate.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SmtpClient } from "../src/delivery/smtp_client.ts";
import { generateDevCertificates } from "../src/tls/mod.ts";
import { startTestRelay } from "./support/relay.ts";

Deno.test("SNI picks the certificate of the name the client asks for", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "relay-sni-" });
  const other = await generateDevCertificates({
    dir: join(dir, "company"),
    hostnames: ["mail.company.test", "*.company.test"],
  });
  const relay = await startTestRelay({
    config: {
      tls: {
        // Dev certificates also name localhost; serve this one only for company.test.
        certificates: [{
          cert: other.cert,
          key: other.key,
          hostnames: ["mail.company.test", "*.company.test"],
        }],
      },
    },
  });
  const otherCa = await Deno.readTextFile(other.caCert);
  const connect = (port: number, security: "implicit" | "starttls", name: string, ca: string) =>
    SmtpClient.connect({ host: "127.0.0.1", port, security, servername: name, caCerts: [ca] });
  try {
    for (const security of ["implicit", "starttls"] as const) {
      const port = security === "implicit" ? relay.smtpsPort : relay.submissionPort;
      await t.step(`${security}: the other domain's name gets its certificate`, async () => {
        const c = await connect(port, security, "mail.company.test", otherCa);
        await c.quit();
        // A wildcard name of that certificate too.
        const w = await connect(port, security, "smtp.company.test", otherCa);
        await w.quit();
        // It is not the main certificate: the main CA does not vouch for it.
        await assert.rejects(() => connect(port, security, "mail.company.test", relay.caPem));
      });
      await t.step(`${security}: any other name gets the main certificate`, async () => {
        const c = await connect(port, security, "localhost", relay.caPem);
        assert.equal(
          (await c.auth({ username: "alice@example.com", password: "alice-secret-1" })).code,
          235,
        );
        await c.quit();
      });
    }
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});
