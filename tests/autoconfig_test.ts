/**
 * Client autoconfig on the OAuth server's listener of a real relay:
 * Thunderbird's config-v1.1.xml (both paths) parsed with a real XML parser,
 * its SMTP servers connected to and authenticated against, loaded in
 * Chromium; Outlook autodiscover; the Apple profile; 404 for domains that
 * are not the relay's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { SmtpClient } from "../src/delivery/smtp_client.ts";
import { launchBrowser } from "./support/browser.ts";
import { startTestRelay, type TestRelay, USERS } from "./support/relay.ts";

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@" });

function parseXml(text: string): Record<string, unknown> {
  assert.equal(XMLValidator.validate(text), true, text);
  return parser.parse(text);
}

async function withRelay(
  extra: Record<string, Record<string, unknown>>,
  run: (t: TestRelay, base: string) => Promise<void>,
): Promise<void> {
  const t = await startTestRelay({
    config: {
      server: { public_hostname: "localhost" },
      oauth: { enabled: true, listen: "127.0.0.1:0", issuer: "http://127.0.0.1:0" },
      domains: { disabled: ["company.com"] },
      ...extra,
    },
  });
  try {
    await run(t, t.relay.oauth!.url);
  } finally {
    await t.close();
  }
}

type Server = Record<string, string | number> & { "@type": string };

Deno.test("Thunderbird autoconfig: both paths, OAuth2 entries first, every server accepts the user", async () => {
  await withRelay({ autoconfig: { imap_hostname: "imap.example.com" } }, async (t, base) => {
    const paths = [
      "/.well-known/autoconfig/mail/config-v1.1.xml",
      "/mail/config-v1.1.xml",
    ];
    const texts: string[] = [];
    for (const path of paths) {
      const response = await fetch(`${base}${path}?emailaddress=${USERS[0].email}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/xml; charset=utf-8");
      texts.push(await response.text());
    }
    assert.equal(texts[0], texts[1]);
    const doc = parseXml(texts[0]) as {
      clientConfig: {
        "@version": string;
        emailProvider: {
          "@id": string;
          domain: string;
          incomingServer: Server[];
          outgoingServer: Server[];
        };
        oAuth2: { authURL: string; tokenURL: string; scope: string };
      };
    };
    assert.equal(doc.clientConfig["@version"], "1.1");
    const provider = doc.clientConfig.emailProvider;
    assert.equal(provider["@id"], "example.com");
    assert.equal(provider.domain, "example.com");
    assert.deepEqual(
      provider.outgoingServer.map((s) => [s.port, s.socketType, s.authentication]),
      [
        [t.smtpsPort, "SSL", "OAuth2"],
        [t.submissionPort, "STARTTLS", "OAuth2"],
        [t.smtpsPort, "SSL", "password-cleartext"],
        [t.submissionPort, "STARTTLS", "password-cleartext"],
      ],
    );
    assert.deepEqual(provider.incomingServer.map((s) => [s.hostname, s.port]), [
      ["imap.example.com", 993],
      ["imap.example.com", 993],
    ]);
    const discovery =
      await (await fetch(`${t.relay.oauth!.issuer}/.well-known/openid-configuration`))
        .json();
    assert.equal(doc.clientConfig.oAuth2.authURL, discovery.authorization_endpoint);
    assert.equal(doc.clientConfig.oAuth2.tokenURL, discovery.token_endpoint);
    assert.equal(doc.clientConfig.oAuth2.scope, "smtp.send");

    // Connect to every password entry as Thunderbird would, and log in.
    for (const server of provider.outgoingServer.slice(2)) {
      assert.equal(server.username, "%EMAILADDRESS%");
      const client = await SmtpClient.connect({
        host: String(server.hostname),
        port: Number(server.port),
        security: server.socketType === "SSL" ? "implicit" : "starttls",
        caCerts: [t.caPem],
      });
      const reply = await client.auth({ username: USERS[0].email, password: USERS[0].password });
      assert.equal(reply.code, 235);
      await client.quit();
    }
  });
});

Deno.test("autoconfig answers 404 for domains that are not the relay's, and serves autoconfig.domains", async () => {
  await withRelay({ autoconfig: { domains: ["Extra.Example"] } }, async (_t, base) => {
    const get = async (email: string) => {
      const response = await fetch(`${base}/mail/config-v1.1.xml?emailaddress=${email}`);
      return { status: response.status, text: await response.text() };
    };
    assert.equal((await get("someone@unknown.example")).status, 404);
    assert.equal((await get("bob@company.com")).status, 404, "a disabled domain");
    const extra = await get("anyone@extra.example");
    assert.equal(extra.status, 200);
    assert.match(extra.text, /<domain>extra\.example<\/domain>/);
    assert.equal((await get("not-an-address")).status, 400);
  });
});

Deno.test("Outlook autodiscover (POST, 2006a schema) and the Apple profile", async () => {
  await withRelay({ autoconfig: { smtps_port: 465, submission_port: 587 } }, async (_t, base) => {
    const request = (email: string) =>
      `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>${email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;
    const post = (body: string) =>
      fetch(`${base}/autodiscover/autodiscover.xml`, {
        method: "POST",
        headers: { "content-type": "text/xml" },
        body,
      });
    const response = await post(request(USERS[0].email));
    assert.equal(response.status, 200);
    const doc = parseXml(await response.text()) as {
      Autodiscover: { Response: { "@xmlns": string; Account: { Protocol: Server[] } } };
    };
    assert.equal(
      doc.Autodiscover.Response["@xmlns"],
      "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a",
    );
    assert.deepEqual(
      doc.Autodiscover.Response.Account.Protocol.map((p) => [
        p.Type,
        p.Server,
        p.Port,
        p.Encryption,
        p.LoginName,
      ]),
      [
        ["SMTP", "localhost", 465, "SSL", USERS[0].email],
        ["SMTP", "localhost", 587, "TLS", USERS[0].email],
      ],
    );
    const unknown = await post(request("x@unknown.example"));
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const broken = await post("<Autodiscover><Request>");
    assert.equal(broken.status, 400);
    await broken.body?.cancel();

    const noImap = await fetch(`${base}/apple/mobileconfig?email=${USERS[0].email}`);
    assert.equal(noImap.status, 404);
    assert.match(await noImap.text(), /autoconfig\.imap_hostname/);
  });
  await withRelay({ autoconfig: { imap_hostname: "imap.example.com" } }, async (t, base) => {
    const response = await fetch(`${base}/apple/mobileconfig?email=${USERS[0].email}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/x-apple-aspen-config");
    assert.match(response.headers.get("content-disposition")!, /example\.com\.mobileconfig/);
    const plist = parseXml(await response.text()) as {
      plist: { dict: { array: { dict: { key: string[]; string: string[]; integer: number[] } } } };
    };
    const account = plist.plist.dict.array.dict;
    assert.ok(account.key.includes("OutgoingMailServerHostName"));
    assert.ok(account.string.includes("com.apple.mail.managed"));
    assert.ok(account.string.includes("localhost"));
    assert.ok(account.integer.includes(t.smtpsPort));
  });
});

Deno.test("Chromium's XML parser reads the autoconfig document", async () => {
  await withRelay({}, async (_t, base) => {
    await using browser = await launchBrowser();
    const page = await browser.context.newPage();
    const url = `${base}/mail/config-v1.1.xml?emailaddress=alice@example.com`;
    const response = await page.goto(url);
    assert.equal(response?.status(), 200);
    const parsed = await page.evaluate(`fetch(${JSON.stringify(url)})
      .then((r) => r.text())
      .then((text) => {
        const doc = new DOMParser().parseFromString(text, "application/xml");
        if (doc.querySelector("parsererror")) return ["parsererror"];
        return [doc.documentElement.nodeName,
          ...[...doc.querySelectorAll("outgoingServer > authentication")].map((e) => e.textContent)];
      })`);
    assert.deepEqual(parsed, [
      "clientConfig",
      "OAuth2",
      "OAuth2",
      "password-cleartext",
      "password-cleartext",
    ]);
  });
});
