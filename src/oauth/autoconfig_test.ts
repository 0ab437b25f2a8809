import assert from "node:assert/strict";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { autodiscoverEmail, autodiscoverResponse, thunderbirdConfig } from "./autoconfig.ts";

const hostile = `mail"<&>'\u0001.example`;
const settings = {
  hostname: hostile,
  smtps: 465,
  submission: null,
  imap: null,
  oauth: {
    issuer: "https://auth.example/?a=1&b=<2>",
    authorizationEndpoint: "https://auth.example/authorize?x=1&y=2",
    tokenEndpoint: "https://auth.example/token",
  },
};

Deno.test("markup in configured values is escaped: the documents stay well-formed and round-trip", () => {
  const parser = new XMLParser({ processEntities: true, htmlEntities: false });
  const config = thunderbirdConfig(`a&b<c>.example`, settings);
  assert.equal(XMLValidator.validate(config), true);
  const doc = parser.parse(config);
  assert.equal(doc.clientConfig.emailProvider.domain, "a&b<c>.example");
  assert.equal(doc.clientConfig.emailProvider.outgoingServer[0].hostname, `mail"<&>'.example`);
  assert.equal(doc.clientConfig.oAuth2.authURL, "https://auth.example/authorize?x=1&y=2");

  const answer = autodiscoverResponse(`o'brien&co@example.com`, settings);
  assert.equal(XMLValidator.validate(answer), true);
  assert.equal(
    parser.parse(answer).Autodiscover.Response.Account.Protocol.LoginName,
    `o'brien&co@example.com`,
  );
});

Deno.test("autodiscover requests: the address with or without namespace prefixes; junk is null", () => {
  const ns = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
  assert.equal(
    autodiscoverEmail(
      `<a:Autodiscover xmlns:a="${ns}"><a:Request><a:EMailAddress> x@example.com </a:EMailAddress></a:Request></a:Autodiscover>`,
    ),
    "x@example.com",
  );
  assert.equal(autodiscoverEmail("<Autodiscover><Request></Request></Autodiscover>"), null);
  assert.equal(autodiscoverEmail("not xml <<<"), null);
});
