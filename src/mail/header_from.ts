/**
 * The address of a `From:` field (RFC 5322 3.6.2): one mailbox, as
 * `Display Name <local@domain>` or a bare `local@domain`, with comments and
 * quoted display names. A list of mailboxes or a group is not accepted:
 * a submission relay binds the author to the authenticated user, and that
 * takes exactly one author.
 *
 * @module
 */
import { type EmailAddress, parseEmail } from "./address.ts";

/** What a `From:` value came to. */
export type FromMailbox =
  | { ok: true; address: EmailAddress }
  | { ok: false; reason: "multiple" | "malformed" };

/** Parses one `From:` field value (unfolded). */
export function parseFromMailbox(value: string): FromMailbox {
  let plain = ""; // the value without comments and quoted strings
  const angles: string[] = [];
  let angle: string | null = null;
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (depth > 0) {
      if (c === "\\") i++;
      else if (c === "(") depth++;
      else if (c === ")") depth--;
      continue;
    }
    if (angle !== null) {
      if (c === ">") {
        angles.push(angle);
        angle = null;
      } else if (c === "<") return { ok: false, reason: "malformed" };
      else angle += c;
      continue;
    }
    if (c === "(") depth++;
    else if (c === '"') {
      // A quoted display name (or local part): skip to its closing quote.
      let j = i + 1;
      while (j < value.length && value[j] !== '"') j += value[j] === "\\" ? 2 : 1;
      if (j >= value.length) return { ok: false, reason: "malformed" };
      plain += value.slice(i, j + 1);
      i = j;
    } else if (c === "<") angle = "";
    else if (c === ",") return { ok: false, reason: "multiple" };
    else if (c === ":" || c === ";" || c === ">") return { ok: false, reason: "malformed" };
    else plain += c;
  }
  if (depth > 0 || angle !== null) return { ok: false, reason: "malformed" };
  if (angles.length > 1) return { ok: false, reason: "multiple" };
  const spec = angles.length === 1 ? angles[0].trim() : plain.trim();
  const address = parseEmail(spec);
  return address ? { ok: true, address } : { ok: false, reason: "malformed" };
}
