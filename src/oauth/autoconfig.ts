/**
 * Mail client set-up documents on the public HTTP listener, for users of the
 * relay's own domains only (any other domain gets 404):
 *
 * - Thunderbird autoconfig (`config-v1.1.xml`) at
 *   `/.well-known/autoconfig/mail/config-v1.1.xml` and
 *   `/mail/config-v1.1.xml` (`?emailaddress=`): both submission ports, the
 *   OAuth2 entries first and the password entries after them (Thunderbird
 *   skips an OAuth2 entry whose issuer it does not know and falls through);
 * - Microsoft autodiscover (`POST /autodiscover/autodiscover.xml`, the
 *   Outlook "POX" schema of 2006);
 * - an Apple configuration profile (`/apple/mobileconfig?email=`).
 *
 * @module
 */
import { XMLParser } from "fast-xml-parser";
import { normalizeDomain, parseEmail } from "../mail/mod.ts";
import { HttpError, readBody } from "./http.ts";

/** Where clients are sent, as the documents describe it. */
export interface MailSettings {
  /** The host name clients connect to (`server.public_hostname`). */
  hostname: string;
  /** SMTPS port, or `null` when that listener is off. */
  smtps: number | null;
  /** Submission (STARTTLS) port, or `null` when that listener is off. */
  submission: number | null;
  /** The mailbox server users read mail on (listed as the incoming server). */
  imap: { hostname: string; port: number } | null;
  /** Our OAuth2 endpoints, when the embedded server runs. */
  oauth: { issuer: string; authorizationEndpoint: string; tokenEndpoint: string } | null;
}

/** What the autoconfig endpoints need from the relay. */
export interface AutoconfigOptions {
  /** Whether `domain` (normalised) is one of the relay's domains. */
  knownDomain(domain: string): Promise<boolean>;
  /** The current settings (listener ports are known only once they are bound). */
  settings(): MailSettings;
}

/** Largest autodiscover request body accepted. */
const AUTODISCOVER_LIMIT = 16 * 1024;

const OUTLOOK_RESPONSE_SCHEMA =
  "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/** Escapes text for XML element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${XML_ENTITIES[c]};`)
    // Characters XML 1.0 cannot carry at all.
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "");
}
const XML_ENTITIES: Record<string, string> = {
  "&": "amp",
  "<": "lt",
  ">": "gt",
  '"': "quot",
  "'": "apos",
};

/** `<name>text</name>`, escaped. */
function el(name: string, text: string | number): string {
  return `<${name}>${escapeXml(String(text))}</${name}>`;
}

/** The outgoing servers in Thunderbird's order: OAuth2 entries first, then passwords. */
function smtpEntries(settings: MailSettings): { port: number; ssl: boolean; oauth: boolean }[] {
  const ports = [
    ...(settings.smtps !== null ? [{ port: settings.smtps, ssl: true }] : []),
    ...(settings.submission !== null ? [{ port: settings.submission, ssl: false }] : []),
  ];
  return [
    ...(settings.oauth ? ports.map((p) => ({ ...p, oauth: true })) : []),
    ...ports.map((p) => ({ ...p, oauth: false })),
  ];
}

/** The Thunderbird autoconfig document (clientConfig version 1.1) for a domain. */
export function thunderbirdConfig(domain: string, settings: MailSettings): string {
  const lines = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<clientConfig version="1.1">`,
    `  <emailProvider id="${escapeXml(domain)}">`,
    `    ${el("domain", domain)}`,
    `    ${el("displayName", `${domain} mail`)}`,
    `    ${el("displayShortName", domain)}`,
  ];
  if (settings.imap) {
    for (const auth of settings.oauth ? ["OAuth2", "password-cleartext"] : ["password-cleartext"]) {
      lines.push(
        `    <incomingServer type="imap">`,
        `      ${el("hostname", settings.imap.hostname)}`,
        `      ${el("port", settings.imap.port)}`,
        `      ${el("socketType", "SSL")}`,
        `      ${el("authentication", auth)}`,
        `      ${el("username", "%EMAILADDRESS%")}`,
        `    </incomingServer>`,
      );
    }
  }
  for (const entry of smtpEntries(settings)) {
    lines.push(
      `    <outgoingServer type="smtp">`,
      `      ${el("hostname", settings.hostname)}`,
      `      ${el("port", entry.port)}`,
      `      ${el("socketType", entry.ssl ? "SSL" : "STARTTLS")}`,
      `      ${el("authentication", entry.oauth ? "OAuth2" : "password-cleartext")}`,
      `      ${el("username", "%EMAILADDRESS%")}`,
      `    </outgoingServer>`,
    );
  }
  lines.push(`  </emailProvider>`);
  if (settings.oauth) {
    lines.push(
      `  <oAuth2>`,
      `    ${el("issuer", new URL(settings.oauth.issuer).hostname)}`,
      `    ${el("scope", "smtp.send")}`,
      `    ${el("authURL", settings.oauth.authorizationEndpoint)}`,
      `    ${el("tokenURL", settings.oauth.tokenEndpoint)}`,
      `  </oAuth2>`,
    );
  }
  lines.push(`</clientConfig>`, ``);
  return lines.join("\n");
}

/** The Outlook autodiscover answer (response schema 2006a) for an address. */
export function autodiscoverResponse(email: string, settings: MailSettings): string {
  const protocol = (type: string, host: string, port: number, encryption: string) => [
    `      <Protocol>`,
    `        ${el("Type", type)}`,
    `        ${el("Server", host)}`,
    `        ${el("Port", port)}`,
    `        ${el("DomainRequired", "off")}`,
    `        ${el("LoginName", email)}`,
    `        ${el("SPA", "off")}`,
    `        ${el("Encryption", encryption)}`,
    `        ${el("AuthRequired", "on")}`,
    `      </Protocol>`,
  ];
  const protocols: string[] = [];
  if (settings.imap) {
    protocols.push(...protocol("IMAP", settings.imap.hostname, settings.imap.port, "SSL"));
  }
  if (settings.smtps !== null) {
    protocols.push(...protocol("SMTP", settings.hostname, settings.smtps, "SSL"));
  }
  if (settings.submission !== null) {
    protocols.push(...protocol("SMTP", settings.hostname, settings.submission, "TLS"));
  }
  return [
    `<?xml version="1.0" encoding="utf-8"?>`,
    `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">`,
    `  <Response xmlns="${OUTLOOK_RESPONSE_SCHEMA}">`,
    `    <Account>`,
    `      ${el("AccountType", "email")}`,
    `      ${el("Action", "settings")}`,
    ...protocols,
    `    </Account>`,
    `  </Response>`,
    `</Autodiscover>`,
    ``,
  ].join("\n");
}

/** An Apple configuration profile (`com.apple.mail.managed`) for an address. */
export function appleMobileconfig(
  email: string,
  settings: MailSettings & { imap: { hostname: string; port: number } },
  uuids: { profile: string; account: string } = {
    profile: crypto.randomUUID(),
    account: crypto.randomUUID(),
  },
): string {
  const useSsl = settings.smtps !== null;
  const port = settings.smtps ?? settings.submission ?? 465;
  const identifier = settings.hostname.split(".").reverse().join(".") + ".relay";
  const s = (key: string, value: string) => `    ${el("key", key)}${el("string", value)}`;
  const i = (key: string, value: number) => `    ${el("key", key)}${el("integer", value)}`;
  const b = (key: string, value: boolean) => `    ${el("key", key)}<${value}/>`;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`,
    `<plist version="1.0">`,
    `<dict>`,
    `  <key>PayloadContent</key>`,
    `  <array>`,
    `   <dict>`,
    s("EmailAccountDescription", email),
    s("EmailAccountType", "EmailTypeIMAP"),
    s("EmailAddress", email),
    s("IncomingMailServerAuthentication", "EmailAuthPassword"),
    s("IncomingMailServerHostName", settings.imap.hostname),
    i("IncomingMailServerPortNumber", settings.imap.port),
    b("IncomingMailServerUseSSL", true),
    s("IncomingMailServerUsername", email),
    s("OutgoingMailServerAuthentication", "EmailAuthPassword"),
    s("OutgoingMailServerHostName", settings.hostname),
    i("OutgoingMailServerPortNumber", port),
    b("OutgoingMailServerUseSSL", useSsl),
    s("OutgoingMailServerUsername", email),
    b("OutgoingPasswordSameAsIncomingPassword", true),
    s("PayloadDescription", `Mail account ${email}`),
    s("PayloadDisplayName", email),
    s("PayloadIdentifier", `${identifier}.account.${uuids.account}`),
    s("PayloadType", "com.apple.mail.managed"),
    s("PayloadUUID", uuids.account),
    i("PayloadVersion", 1),
    `   </dict>`,
    `  </array>`,
    s("PayloadDescription", `Mail settings for ${email}`),
    s("PayloadDisplayName", `${settings.hostname} mail`),
    s("PayloadIdentifier", `${identifier}.${uuids.profile}`),
    b("PayloadRemovalDisallowed", false),
    s("PayloadType", "Configuration"),
    s("PayloadUUID", uuids.profile),
    i("PayloadVersion", 1),
    `</dict>`,
    `</plist>`,
    ``,
  ].join("\n");
}

function xml(body: string, contentType = "application/xml; charset=utf-8"): Response {
  return new Response(body, {
    headers: {
      "content-type": contentType,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

function notFound(why: string): Response {
  return new Response(`${why}\n`, {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

/** The address from an autodiscover request body (`Autodiscover/Request/EMailAddress`). */
export function autodiscoverEmail(body: string): string | null {
  let doc: Record<string, unknown>;
  try {
    doc = new XMLParser({ removeNSPrefix: true, processEntities: false }).parse(body, true);
  } catch {
    return null;
  }
  const request = (doc?.Autodiscover as Record<string, unknown> | undefined)?.Request as
    | Record<string, unknown>
    | undefined;
  const email = request?.EMailAddress;
  return typeof email === "string" ? email.trim() : null;
}

/** The paths this module answers. */
export const AUTOCONFIG_PATHS: readonly string[] = [
  "/.well-known/autoconfig/mail/config-v1.1.xml",
  "/mail/config-v1.1.xml",
  "/autodiscover/autodiscover.xml",
  "/Autodiscover/Autodiscover.xml",
  "/apple/mobileconfig",
];

/**
 * Answers a request for one of {@link AUTOCONFIG_PATHS}; the caller routes
 * only those here.
 */
export async function handleAutoconfig(
  options: AutoconfigOptions,
  request: Request,
  url: URL,
): Promise<Response> {
  const path = url.pathname.toLowerCase();
  let email: string | null;
  let domainFromHost: string | null = null;
  if (path === "/autodiscover/autodiscover.xml") {
    if (request.method !== "POST") {
      await request.body?.cancel();
      return new Response("method not allowed\n", { status: 405, headers: { allow: "POST" } });
    }
    const body = new TextDecoder().decode(await readBody(request, AUTODISCOVER_LIMIT));
    email = autodiscoverEmail(body);
    if (email === null) {
      throw new HttpError(400, "expected an Autodiscover request with EMailAddress");
    }
  } else {
    await request.body?.cancel();
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    }
    email = url.searchParams.get(path === "/apple/mobileconfig" ? "email" : "emailaddress");
    if (email === null && path !== "/apple/mobileconfig") {
      // Thunderbird always sends the address; a bare fetch names the domain by host.
      domainFromHost = normalizeDomain(url.hostname.replace(/^autoconfig\./i, ""));
    }
  }
  const address = email !== null ? parseEmail(email) : null;
  if (email !== null && address === null) throw new HttpError(400, "not a valid email address");
  const domain = address?.domain ?? domainFromHost;
  if (domain === null) throw new HttpError(400, "the email parameter is required");
  if (!await options.knownDomain(domain)) return notFound(`no mail service for ${domain} here`);
  const settings = options.settings();
  if (path === "/apple/mobileconfig") {
    const imap = settings.imap;
    if (!imap) {
      return notFound("Apple profiles need an incoming server: set autoconfig.imap_hostname");
    }
    const response = xml(
      appleMobileconfig(address!.canonical, { ...settings, imap }),
      "application/x-apple-aspen-config",
    );
    response.headers.set("content-disposition", `attachment; filename="${domain}.mobileconfig"`);
    return response;
  }
  if (path === "/autodiscover/autodiscover.xml") {
    return xml(autodiscoverResponse(address!.canonical, settings));
  }
  return xml(thunderbirdConfig(domain, settings));
}
