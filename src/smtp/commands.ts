/**
 * Parses one command line into a typed {@link Command}. The parser knows
 * syntax only; whether a command is allowed now is the dispatcher's business.
 *
 * @module
 */

/** ESMTP parameters of MAIL FROM (RFC 1870, 6152, 6531). */
export interface MailParams {
  /** Declared size (SIZE=), if given. */
  size?: number;
  /** BODY=7BIT or BODY=8BITMIME. */
  body?: "7BIT" | "8BITMIME";
  /** SMTPUTF8 was given. */
  smtputf8?: boolean;
}

/** A parsed command. `invalid` carries the usage text for a 501 reply. */
export type Command =
  | { verb: "EHLO"; domain: string }
  | { verb: "HELO"; domain: string }
  | { verb: "STARTTLS" }
  | { verb: "AUTH"; mechanism: string; initial: string | null }
  | { verb: "MAIL"; address: string; params: MailParams }
  /** `postmaster`: `RCPT TO:<Postmaster>` without a domain (RFC 5321 4.5.1). */
  | { verb: "RCPT"; address: string; postmaster?: true }
  | { verb: "DATA" }
  | { verb: "RSET" }
  | { verb: "NOOP" }
  | { verb: "QUIT" }
  | { verb: "VRFY" }
  | { verb: "HELP" }
  /** A known verb we do not implement (BDAT, ETRN, TURN, EXPN...). */
  | { verb: "UNIMPLEMENTED"; name: string }
  /** Not an SMTP command at all (HTTP request line, mail header...). */
  | { verb: "FORBIDDEN"; name: string }
  | { verb: "UNKNOWN"; name: string }
  /** A known verb with bad syntax. */
  | { verb: "INVALID"; name: string; usage: string; reply?: "parameter" | "value" | "address" }
  /** Command bytes that are not printable ASCII/UTF-8 or contain NUL. */
  | { verb: "BAD_BYTES" };

/** Verbs we know of but do not offer. */
const UNIMPLEMENTED = new Set(["BDAT", "ETRN", "TURN", "ATRN", "EXPN", "SEND", "SOML", "SAML"]);

/**
 * Verbs that show the peer is not speaking SMTP: an HTTP proxy or browser
 * being abused to reach us, or a client that lost sync and sends headers.
 * Postfix hangs up on these; so do we.
 */
const FORBIDDEN = new Set([
  "GET",
  "POST",
  "PUT",
  "HEAD",
  "DELETE",
  "OPTIONS",
  "CONNECT",
  "PATCH",
  "HOST:",
  "USER-AGENT:",
  "RECEIVED:",
  "SUBJECT:",
  "FROM:",
  "TO:",
  "CONTENT-TYPE:",
]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** RFC 3461 xtext: printable ASCII but "+" and "=", or "+" and two upper-case hex digits. */
const XTEXT = /^([\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+$/;

/** A path's address, syntactically checked, without angle brackets. */
function parsePath(text: string, allowNull: boolean): string | null {
  if (!text.startsWith("<")) return null;
  const close = text.indexOf(">");
  if (close !== text.length - 1) return null;
  let inner = text.slice(1, close);
  if (inner === "") return allowNull ? "" : null;
  // Source routes (@a,@b:user@c) are obsolete; RFC 5321 says accept and ignore.
  const colon = inner.startsWith("@") ? inner.indexOf(":") : -1;
  if (colon !== -1) inner = inner.slice(colon + 1);
  if (inner.length > 254 || /[\s<>()\[\],;\\"]/.test(inner.replace(/^".*"@/, "x@"))) return null;
  const at = inner.lastIndexOf("@");
  if (at <= 0 || at === inner.length - 1) return null;
  // A domain is dot-separated labels: no leading, trailing (`bob@example.net.`) or empty one.
  const domain = inner.slice(at + 1);
  if (domain.startsWith(".") || domain.endsWith(".") || domain.includes("..")) return null;
  return inner;
}

/** Splits `FROM:<a@b> SIZE=10` into the path and its parameters. */
function splitPathArgs(rest: string): { path: string; params: string[] } | null {
  const trimmed = rest.trimStart();
  if (!trimmed.startsWith("<")) return null;
  const close = trimmed.indexOf(">");
  if (close === -1) return null;
  const params = trimmed.slice(close + 1).trim();
  return { path: trimmed.slice(0, close + 1), params: params === "" ? [] : params.split(/ +/) };
}

function parseMail(args: string): Command {
  const usage = "MAIL FROM:<address>";
  if (!/^FROM:/i.test(args)) return { verb: "INVALID", name: "MAIL", usage };
  const split = splitPathArgs(args.slice(5));
  if (!split) return { verb: "INVALID", name: "MAIL", usage };
  const address = parsePath(split.path, true);
  if (address === null) return { verb: "INVALID", name: "MAIL", usage, reply: "address" };
  const params: MailParams = {};
  for (const param of split.params) {
    const eq = param.indexOf("=");
    const key = (eq === -1 ? param : param.slice(0, eq)).toUpperCase();
    const value = eq === -1 ? null : param.slice(eq + 1);
    if (key === "SIZE" && value !== null && /^\d{1,15}$/.test(value)) {
      params.size = Number(value);
    } else if (key === "BODY" && value !== null && /^(7BIT|8BITMIME)$/i.test(value)) {
      params.body = value.toUpperCase() as "7BIT" | "8BITMIME";
    } else if (key === "SMTPUTF8" && value === null) {
      params.smtputf8 = true;
    } else if (key === "AUTH" && value !== null && XTEXT.test(value)) {
      // RFC 4954 section 5: a server offering AUTH must accept AUTH=<xtext>
      // (Sendmail sends AUTH=<> to its smart host). It is not trusted: ignored.
    } else if (key === "SIZE" || key === "BODY" || key === "SMTPUTF8" || key === "AUTH") {
      return { verb: "INVALID", name: key, usage, reply: "value" };
    } else {
      return { verb: "INVALID", name: key, usage, reply: "parameter" };
    }
  }
  return { verb: "MAIL", address, params };
}

function parseRcpt(args: string): Command {
  const usage = "RCPT TO:<address>";
  if (!/^TO:/i.test(args)) return { verb: "INVALID", name: "RCPT", usage };
  const split = splitPathArgs(args.slice(3));
  if (!split) return { verb: "INVALID", name: "RCPT", usage };
  // RFC 5321 4.5.1: <Postmaster> without a domain must always be accepted.
  const postmaster = /^<postmaster>$/i.test(split.path);
  const address = postmaster ? "Postmaster" : parsePath(split.path, false);
  if (address === null) return { verb: "INVALID", name: "RCPT", usage, reply: "address" };
  // DSN (NOTIFY=, ORCPT=) is not advertised, so any parameter is unknown.
  if (split.params.length > 0) {
    const key = split.params[0].split("=")[0].toUpperCase();
    return { verb: "INVALID", name: key, usage, reply: "parameter" };
  }
  return postmaster ? { verb: "RCPT", address, postmaster } : { verb: "RCPT", address };
}

/** Parses a command line (without CRLF). Never throws. */
export function parseCommand(line: Uint8Array): Command {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return { verb: "BAD_BYTES" };
  }
  // Control characters other than TAB have no place in a command line.
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) return { verb: "BAD_BYTES" };
  // Tolerate trailing blanks, tabs included ("RSET\t" from hand-typed sessions).
  text = text.replace(/[ \t]+$/, "");
  const space = text.indexOf(" ");
  const name = (space === -1 ? text : text.slice(0, space)).toUpperCase();
  const args = space === -1 ? "" : text.slice(space + 1);
  switch (name) {
    case "EHLO":
    case "HELO": {
      const domain = args.trim();
      if (domain === "" || /\s/.test(domain)) {
        return { verb: "INVALID", name, usage: `${name} hostname` };
      }
      return { verb: name, domain };
    }
    case "STARTTLS":
    case "DATA":
    case "RSET":
    case "QUIT":
      if (args.trim() !== "") return { verb: "INVALID", name, usage: name };
      return { verb: name };
    case "NOOP":
      return { verb: "NOOP" };
    case "HELP":
      return { verb: "HELP" };
    case "VRFY":
      if (args.trim() === "") return { verb: "INVALID", name, usage: "VRFY address" };
      return { verb: "VRFY" };
    case "AUTH": {
      const parts = args.trim().split(/ +/);
      if (parts[0] === "" || parts.length > 2) {
        return { verb: "INVALID", name, usage: "AUTH mechanism [initial-response]" };
      }
      return { verb: "AUTH", mechanism: parts[0].toUpperCase(), initial: parts[1] ?? null };
    }
    case "MAIL":
      return parseMail(args);
    case "RCPT":
      return parseRcpt(args);
  }
  if (UNIMPLEMENTED.has(name)) return { verb: "UNIMPLEMENTED", name };
  if (FORBIDDEN.has(name)) return { verb: "FORBIDDEN", name };
  return { verb: "UNKNOWN", name: name.slice(0, 32) };
}
