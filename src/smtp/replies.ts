/**
 * SMTP replies: one value type that travels to the wire, and the catalogue of
 * every reply the server sends. No other module builds reply text.
 *
 * Enhanced status codes follow RFC 3463 / RFC 5248; the wording follows
 * Postfix where clients and operators already know it.
 *
 * @module
 */

/** A reply: basic code, enhanced status (RFC 3463) and one or more text lines. */
export interface SmtpReply {
  /** Three-digit basic code, e.g. 250. */
  code: number;
  /** Enhanced status code, e.g. `2.1.0`; omitted only for 220/221-style greetings. */
  enhanced?: string;
  /** Text lines; a multi-line reply has several. */
  lines: string[];
  /** Close the connection after sending this reply. */
  close?: boolean;
}

const encoder = new TextEncoder();

/** Formats a reply as wire text with CRLF line endings. */
export function formatReply(reply: SmtpReply): string {
  const { code, enhanced, lines } = reply;
  const texts = lines.length === 0 ? [""] : lines;
  let out = "";
  for (let i = 0; i < texts.length; i++) {
    const sep = i === texts.length - 1 ? " " : "-";
    const text = enhanced ? `${enhanced} ${texts[i]}` : texts[i];
    // Reply text is ours, but may quote client input: never let CR/LF through.
    out += `${code}${sep}${text.replace(/[\r\n]/g, " ")}\r\n`;
  }
  return out;
}

/** Encodes a reply to bytes. */
export function encodeReply(reply: SmtpReply): Uint8Array {
  return encoder.encode(formatReply(reply));
}

/** Whether a reply is a positive completion or intermediate reply. */
export function isPositive(reply: SmtpReply): boolean {
  return reply.code < 400;
}

const r = (code: number, enhanced: string | undefined, text: string, close?: boolean): SmtpReply =>
  close ? { code, enhanced, lines: [text], close } : { code, enhanced, lines: [text] };

/** Shortens client-supplied text quoted in a reply so a reply line stays small. */
function quote(text: string, max = 64): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** Every reply the server sends. */
const TIMEOUT_TEXT: Record<string, string> = {
  command: "timeout exceeded",
  data: "timeout exceeded during DATA",
  data_rate: "DATA transfer too slow",
  session: "session lasted too long",
};

export const Replies = {
  // Connection
  greeting: (host: string): SmtpReply => r(220, undefined, `${host} ESMTP relay ready`),
  bye: (): SmtpReply => r(221, "2.0.0", "Bye", true),
  tooManyConnections: (host: string): SmtpReply =>
    r(421, "4.7.0", `${host} Error: too many connections`, true),
  connectionRateExceeded: (host: string, ip: string): SmtpReply =>
    r(421, "4.7.0", `${host} Error: too many connections from ${ip}, try again later`, true),
  tooManyConnectionsFromIp: (host: string, ip: string): SmtpReply =>
    r(421, "4.7.0", `${host} Error: too many connections from ${ip}`, true),
  /** A read deadline passed (`kind`: which one; see `deadlines.ts`). */
  timeout: (host: string, kind = "command"): SmtpReply =>
    r(421, "4.4.2", `${host} Error: ${TIMEOUT_TEXT[kind] ?? TIMEOUT_TEXT.command}`, true),
  shuttingDown: (host: string): SmtpReply =>
    r(421, "4.3.2", `${host} Service shutting down, closing transmission channel`, true),
  tooManyJunkCommands: (host: string): SmtpReply =>
    r(421, "4.7.0", `${host} Error: too many commands without a message`, true),
  tooManyErrors: (host: string): SmtpReply =>
    r(421, "4.7.0", `${host} Error: too many errors`, true),

  // Greeting commands
  helo: (host: string): SmtpReply => r(250, undefined, host),
  ehlo: (host: string, client: string, extensions: string[]): SmtpReply => ({
    code: 250,
    lines: [`${host} Hello ${quote(client)}`, ...extensions],
  }),

  // Generic
  ok: (): SmtpReply => r(250, "2.0.0", "Ok"),
  noop: (): SmtpReply => r(250, "2.0.0", "Ok"),
  reset: (): SmtpReply => r(250, "2.0.0", "Ok"),
  vrfy: (): SmtpReply =>
    r(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"),
  help: (): SmtpReply => ({
    code: 214,
    enhanced: "2.0.0",
    lines: [
      "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
      "See RFC 5321 and RFC 6409",
    ],
  }),

  // Syntax and sequence
  nonSmtpCommand: (): SmtpReply =>
    r(521, "5.7.0", "Error: non-SMTP command received, closing connection", true),
  unknownCommand: (): SmtpReply => r(500, "5.5.2", "Error: command not recognized"),
  lineTooLong: (): SmtpReply => r(500, "5.5.2", "Error: line too long"),
  badCharacters: (): SmtpReply => r(500, "5.5.2", "Error: command contains NUL or non-ASCII bytes"),
  syntax: (usage: string): SmtpReply => r(501, "5.5.4", `Syntax: ${usage}`),
  notImplemented: (verb: string): SmtpReply =>
    r(502, "5.5.1", `Error: command ${quote(verb, 16)} not implemented`),
  needEhlo: (): SmtpReply => r(503, "5.5.1", "Error: send HELO/EHLO first"),
  needMail: (): SmtpReply => r(503, "5.5.1", "Error: need MAIL command"),
  needRcpt: (): SmtpReply => r(503, "5.5.1", "Error: need RCPT command"),
  nestedMail: (): SmtpReply => r(503, "5.5.1", "Error: nested MAIL command"),
  alreadyAuthenticated: (): SmtpReply => r(503, "5.5.1", "Error: already authenticated"),
  authInTransaction: (): SmtpReply => r(503, "5.5.1", "Error: MAIL transaction in progress"),
  unknownParameter: (name: string): SmtpReply =>
    r(555, "5.5.4", `Unsupported option: ${quote(name, 32)}`),
  badParameterValue: (name: string): SmtpReply =>
    r(501, "5.5.4", `Bad value for parameter ${quote(name, 32)}`),

  // TLS
  readyToStartTls: (): SmtpReply => r(220, "2.0.0", "Ready to start TLS"),
  tlsAlreadyActive: (): SmtpReply => r(554, "5.5.1", "Error: TLS already active"),
  tlsNotAvailable: (): SmtpReply => r(454, "4.7.0", "TLS not available due to temporary reason"),
  tlsRequired: (): SmtpReply => r(530, "5.7.0", "Must issue a STARTTLS command first"),

  // Authentication (RFC 4954)
  authRequired: (): SmtpReply => r(530, "5.7.0", "Authentication required"),
  encryptionRequired: (): SmtpReply =>
    r(538, "5.7.11", "Encryption required for requested authentication mechanism"),
  authSucceeded: (): SmtpReply => r(235, "2.7.0", "Authentication successful"),
  authFailed: (): SmtpReply => r(535, "5.7.8", "Error: authentication failed"),
  authDomainDisabled: (domain: string): SmtpReply =>
    r(535, "5.7.8", `Error: authentication failed: domain ${quote(domain)} is disabled`),
  authTemporaryFailure: (): SmtpReply =>
    r(454, "4.7.0", "Temporary authentication failure, try again later"),
  authMechanismUnknown: (): SmtpReply => r(504, "5.5.4", "Unrecognized authentication type"),
  authRateLimited: (seconds: number): SmtpReply =>
    r(421, "4.7.0", `Too many authentication failures, try again in ${seconds} seconds`, true),
  authCancelled: (): SmtpReply => r(501, "5.7.0", "Authentication aborted"),
  /** RFC 4954 section 4: a SASL response longer than the server accepts. */
  authLineTooLong: (): SmtpReply => r(500, "5.5.6", "Authentication Exchange line is too long"),
  authBadBase64: (): SmtpReply => r(501, "5.5.2", "Cannot decode response"),
  authMalformed: (detail: string): SmtpReply =>
    r(501, "5.5.2", `Invalid authentication data: ${detail}`),
  authzidMismatch: (): SmtpReply =>
    r(535, "5.7.8", "Error: authorization identity must match the authentication identity"),
  /** A SASL challenge; `base64` is already encoded (may be empty). */
  authChallenge: (base64: string): SmtpReply => r(334, undefined, base64),

  // Envelope
  senderOk: (): SmtpReply => r(250, "2.1.0", "Ok"),
  recipientOk: (): SmtpReply => r(250, "2.1.5", "Ok"),
  badSenderSyntax: (): SmtpReply => r(501, "5.1.7", "Bad sender address syntax"),
  badRecipientSyntax: (): SmtpReply => r(501, "5.1.3", "Bad recipient address syntax"),
  nullSenderRefused: (): SmtpReply =>
    r(550, "5.7.1", "Null sender <> is not allowed for authenticated submission"),
  domainMismatch: (authDomain: string, mailDomain: string): SmtpReply =>
    r(
      550,
      "5.7.1",
      `Domain mismatch: authenticated domain (${
        quote(authDomain)
      }) does not match MAIL FROM domain (${quote(mailDomain)})`,
    ),
  senderDomainDisabled: (domain: string): SmtpReply =>
    r(550, "5.7.1", `Sender domain ${quote(domain)} is disabled`),
  nonAsciiWithoutSmtpUtf8: (): SmtpReply =>
    r(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter"),
  quotaExceeded: (who: string, limit: number, measure: string, window: string, seconds: number) =>
    r(
      451,
      "4.7.1",
      `Sending quota exceeded for ${
        quote(who)
      } (${limit} ${measure} per ${window}), try again in ${seconds} seconds`,
    ),
  recipientQuotaExceeded: (who: string, limit: number, window: string): SmtpReply =>
    r(
      452,
      "4.5.3",
      `Recipient quota exceeded for ${quote(who)} (${limit} recipients per ${window})`,
    ),
  quotaExceededPermanently: (who: string, limit: number, measure: string, window: string) =>
    r(
      552,
      "5.7.1",
      `Message exceeds the sending quota for ${quote(who)} (${limit} ${measure} per ${window})`,
    ),
  tooManyRecipients: (): SmtpReply => r(452, "4.5.3", "Error: too many recipients"),
  quotaUnavailable: (): SmtpReply =>
    r(451, "4.3.0", "Error: sending quota cannot be checked now, try again later"),
  messageTooBigDeclared: (): SmtpReply =>
    r(552, "5.3.4", "Message size exceeds fixed maximum message size"),

  // DATA
  startData: (): SmtpReply => r(354, undefined, "End data with <CR><LF>.<CR><LF>"),
  messageTooBig: (): SmtpReply =>
    r(552, "5.3.4", "Message size exceeds fixed maximum message size"),
  bareLineFeed: (): SmtpReply =>
    r(554, "5.6.0", "Message contains bare <LF>; lines must end with <CR><LF>"),
  headerFromMismatch: (from: string, allowed: string): SmtpReply =>
    r(
      550,
      "5.7.1",
      `From: header address ${quote(from)} is not allowed for this user (must be ${allowed})`,
    ),
  headerFromDuplicate: (): SmtpReply => r(550, "5.6.0", "Message has more than one From: header"),
  headerFromMultiple: (): SmtpReply =>
    r(550, "5.6.0", "From: header must name exactly one address"),
  headerFromMalformed: (): SmtpReply => r(550, "5.6.0", "From: header is malformed"),
  headerTooLarge: (limit: number): SmtpReply =>
    r(552, "5.6.0", `Message header exceeds ${limit} bytes`),
  /** The backend's own final reply, passed on in pass-through mode. */
  relayed: (code: number, enhanced: string | undefined, text: string): SmtpReply =>
    r(code, enhanced ?? `${Math.floor(code / 100)}.0.0`, text.slice(0, 400)),
  queued: (id: string): SmtpReply => r(250, "2.0.0", `Ok: queued as ${id}`),
  auditUnavailable: (): SmtpReply =>
    r(451, "4.3.0", "Error: audit trail unavailable, try again later"),
  spoolFailure: (): SmtpReply => r(451, "4.3.0", "Error: queue file write error, try again later"),
  /** RFC 3463 4.3.1: mail system full. */
  spoolFull: (): SmtpReply =>
    r(452, "4.3.1", "Error: insufficient system storage, try again later"),
  /** A bug or an unexpected failure: the session cannot go on safely. */
  localError: (host: string): SmtpReply =>
    r(421, "4.3.0", `${host} Error: local error in processing, closing connection`, true),
} as const;
