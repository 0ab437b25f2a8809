/**
 * Delivery status notifications (RFC 3464): the `multipart/report` message
 * that tells a sender which recipients could not be reached and why.
 *
 * Layout (RFC 3462/6522): a human-readable part, a `message/delivery-status`
 * part (one per-message block, one block per failed recipient), and the
 * returned message — in full (`message/rfc822`) when it is small and 7-bit,
 * else only its header (`text/rfc822-headers`) when that is 7-bit, else
 * nothing. A DSN is therefore 7-bit, and can go back through a backend
 * that lacks 8BITMIME or SMTPUTF8 (often the very reason for the bounce):
 * non-ASCII recipient addresses are written as RFC 6533 `utf-8-addr-xtext`
 * (`j\x{FC}rgen@example.org`). Only when the sender's own address is not
 * ASCII (the DSN then needs SMTPUTF8 anyway) are the RFC 6533 `global`
 * types used.
 *
 * @module
 */
import {
  type Envelope,
  hasEightBitBytes,
  headerLength,
  isNonAscii,
  type RecipientOutcome,
  rfc5322Date,
} from "../mail/mod.ts";

/** Largest original message returned in full. */
export const DSN_RETURN_LIMIT = 64 * 1024;

/** Options for {@linkcode buildDsn}. */
export interface BuildDsnOptions {
  /** The original message's envelope. */
  envelope: Envelope;
  /** The original message's bytes. */
  data: Uint8Array;
  /** The recipients that failed, with their outcome. */
  failed: RecipientOutcome[];
  /** Queue id for the DSN itself. */
  id: string;
  /** Our host name (Reporting-MTA, From: MAILER-DAEMON@...). */
  reportingMta: string;
  /** When the notification is made. */
  now: Date;
  /** Largest original returned in full (default {@linkcode DSN_RETURN_LIMIT}). */
  returnLimit?: number;
}

/** A DSN ready for the spool. */
export interface Dsn {
  /** Envelope of the DSN: null sender, the original sender as recipient. */
  envelope: Envelope;
  /** The DSN message (7-bit unless the sender needs SMTPUTF8). */
  data: Uint8Array;
}

/** Printable ASCII only, one line: backend replies are not trusted. */
function clean(text: string, max = 900): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, max);
}

/** The RFC 3463 status of an outcome: given, read from the reply, or from its class. */
export function dsnStatus(outcome: RecipientOutcome): string {
  if (outcome.enhanced && /^[245]\.\d{1,3}\.\d{1,3}$/.test(outcome.enhanced)) {
    return outcome.enhanced;
  }
  const match = /^([245])\d\d ([245]\.\d{1,3}\.\d{1,3})\b/.exec(outcome.reply);
  if (match && match[1] === match[2][0]) return match[2];
  return outcome.status === "failed" ? "5.0.0" : "4.0.0";
}

/**
 * RFC 6533 `utf-8-addr-xtext`: an address with every non-ASCII character
 * (and `+`, `=`, backslash, controls) written as `\x{HEX}`, so it fits a 7-bit report.
 */
export function xtext(address: string): string {
  let out = "";
  for (const ch of address) {
    const cp = ch.codePointAt(0)!;
    const plain = cp >= 0x21 && cp <= 0x7e && ch !== "+" && ch !== "=" && ch !== "\\";
    out += plain ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

/** Whether a reply text looks like an SMTP reply (`550 ...`): then it is an `smtp;` diagnostic. */
function diagnostic(reply: string): string {
  return /^[245]\d\d\b/.test(reply) ? `smtp; ${clean(reply)}` : `x-relay; ${clean(reply)}`;
}

/**
 * Builds a DSN to the original sender for the failed recipients.
 *
 * @throws {Error} when the original has the null sender (bounces are never bounced)
 */
export function buildDsn(options: BuildDsnOptions): Dsn {
  const { envelope, data, failed, id, reportingMta, now } = options;
  if (envelope.from === "") throw new Error("a message from the null sender is never bounced");
  // A global (RFC 6533) report needs SMTPUTF8 on the way back: only when the sender needs it anyway.
  const global = isNonAscii(envelope.from);
  const shown = (address: string) => global ? address : xtext(address);
  const addressType = (address: string) =>
    isNonAscii(address) ? `utf-8; ${shown(address)}` : `rfc822; ${address}`;
  const boundary = `${id}/${clean(reportingMta, 60)}`;
  const lines: string[] = [];
  const host = clean(reportingMta, 253);
  lines.push(
    `From: Mail Delivery System <MAILER-DAEMON@${host}>`,
    `To: <${envelope.from}>`,
    "Subject: Undelivered Mail Returned to Sender",
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${id}.dsn@${host}>`,
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=${
      global ? "global-delivery-status" : "delivery-status"
    };`,
    `\tboundary="${boundary}"`,
    `Content-Transfer-Encoding: ${global ? "8bit" : "7bit"}`,
    "",
    "This is a MIME-encapsulated message.",
    "",
    `--${boundary}`,
    "Content-Description: Notification",
    `Content-Type: text/plain; charset=${global ? "utf-8" : "us-ascii"}`,
    "",
    `This is the mail system at host ${host}.`,
    "",
    "I'm sorry to have to inform you that your message could not",
    "be delivered to one or more recipients. It's attached below.",
    "",
    `The message was accepted as queue id ${envelope.id} on ${
      rfc5322Date(new Date(envelope.receivedAt))
    }.`,
    "",
  );
  for (const f of failed) {
    lines.push(`<${shown(f.recipient)}>: ${clean(f.reply, 500)}`, "");
  }
  lines.push(
    `--${boundary}`,
    "Content-Description: Delivery report",
    `Content-Type: message/${global ? "global-delivery-status" : "delivery-status"}`,
    "",
    `Reporting-MTA: dns; ${host}`,
    `X-Relay-Queue-ID: ${envelope.id}`,
    `Arrival-Date: ${rfc5322Date(new Date(envelope.receivedAt))}`,
    "",
  );
  for (const f of failed) {
    lines.push(
      `Final-Recipient: ${addressType(f.recipient)}`,
      "Action: failed",
      `Status: ${dsnStatus(f)}`,
    );
    if (f.remoteMta) lines.push(`Remote-MTA: dns; ${clean(f.remoteMta, 253)}`);
    lines.push(
      `Diagnostic-Code: ${diagnostic(f.reply)}`,
      `Last-Attempt-Date: ${rfc5322Date(now)}`,
      "",
    );
  }
  const limit = options.returnLimit ?? DSN_RETURN_LIMIT;
  const header = data.subarray(0, headerLength(data));
  const eightBit = hasEightBitBytes(data);
  let returned: Uint8Array | null = null;
  if (data.length <= limit && (!eightBit || global)) {
    lines.push(
      `--${boundary}`,
      "Content-Description: Undelivered Message",
      `Content-Type: message/${global ? "global" : "rfc822"}`,
      "",
    );
    returned = data;
  } else if (!hasEightBitBytes(header) || global) {
    lines.push(
      `--${boundary}`,
      "Content-Description: Undelivered Message Headers",
      `Content-Type: ${global ? "message/global-headers" : "text/rfc822-headers"}`,
      "",
    );
    returned = header;
  }
  const encoder = new TextEncoder();
  const head = encoder.encode(lines.join("\r\n") + "\r\n");
  let body = returned ?? new Uint8Array(0);
  // The closing boundary must start on a line of its own.
  const needsBreak = body.length > 0 && body[body.length - 1] !== 0x0a;
  const tail = encoder.encode(`${needsBreak ? "\r\n" : ""}\r\n--${boundary}--\r\n`);
  if (returned === null) body = new Uint8Array(0);
  const out = new Uint8Array(head.length + body.length + tail.length);
  out.set(head, 0);
  out.set(body, head.length);
  out.set(tail, head.length + body.length);
  return {
    envelope: {
      v: 1,
      id,
      from: "",
      recipients: [envelope.from],
      receivedAt: now.toISOString(),
      ...(global ? { body: "8BITMIME" as const, smtputf8: true } : {}),
      client: { address: "127.0.0.1", helo: reportingMta },
    },
    data: out,
  };
}
