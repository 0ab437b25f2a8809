/**
 * The `Received:` trace header (RFC 5321 4.4) prepended to every accepted
 * message, with the RFC 3848 protocol keyword (ESMTPSA = ESMTP + TLS + AUTH),
 * or the RFC 6531 one for an SMTPUTF8 transaction (UTF8SMTPSA), whose
 * addresses are then kept in UTF-8.
 *
 * @module
 */
import { rfc5322Date } from "../mail/mod.ts";
import type { TlsInfo } from "./byte_stream.ts";

/** What goes into the header. */
export interface ReceivedOptions {
  hostname: string;
  /** The client's EHLO/HELO argument (client-supplied: sanitised here). */
  helo: string;
  address: string;
  esmtp: boolean;
  tls: TlsInfo | null;
  /** The authenticated identity, if any. */
  user?: string;
  id: string;
  /** Named in a `for` clause only when there is exactly one. */
  recipients: string[];
  /** The transaction used SMTPUTF8 (MAIL FROM ... SMTPUTF8). */
  smtputf8?: boolean;
  date: Date;
}

/** Client text may contain anything; keep printable ASCII without parentheses. */
function clean(text: string, max = 128): string {
  return text.replace(/[^\x21-\x7e]|[()]/g, "?").slice(0, max);
}

/**
 * An address for the header: printable ASCII, or (SMTPUTF8) any character
 * that is not a control, a space or a delimiter of the header's syntax.
 */
function cleanAddress(address: string, utf8: boolean): string {
  if (!utf8) return clean(address, 254);
  return [...address.replace(/[\p{C}\p{Z}()<>;]/gu, "?")].slice(0, 254).join("");
}

/** Builds the header, folded, ending in CRLF. */
export function receivedHeader(o: ReceivedOptions): string {
  const utf8 = o.smtputf8 === true;
  const protocol = (utf8 ? "UTF8SMTP" : o.esmtp ? "ESMTP" : "SMTP") + (o.tls ? "S" : "") +
    (o.user ? "A" : "");
  const address = o.address.includes(":") ? `IPv6:${o.address}` : o.address;
  let header = `Received: from ${clean(o.helo) || "unknown"} ([${address}])\r\n` +
    `\tby ${o.hostname} (relay) with ${protocol} id ${o.id}`;
  if (o.tls) header += `\r\n\t(using ${o.tls.protocol} with cipher ${o.tls.cipher})`;
  if (o.user) header += `\r\n\t(authenticated sender: ${cleanAddress(o.user, utf8)})`;
  if (o.recipients.length === 1) header += `\r\n\tfor <${cleanAddress(o.recipients[0], utf8)}>`;
  return `${header};\r\n\t${rfc5322Date(o.date)}\r\n`;
}
