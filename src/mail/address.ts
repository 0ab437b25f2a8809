/**
 * Email address and domain normalisation. A domain is the tenant, so two
 * spellings of one domain (case, Unicode vs. punycode) must compare equal.
 *
 * @module
 */
import { domainToASCII } from "node:url";

/** An email address split into its parts, domain in canonical form. */
export interface EmailAddress {
  /** The local part as given (case kept: RFC 5321 says it may matter). */
  local: string;
  /** Lower-cased ASCII (IDNA) domain. */
  domain: string;
  /** `local@domain` with the canonical domain and a lower-cased local part. */
  canonical: string;
}

/**
 * Canonicalises a domain: trims a trailing dot, lower-cases it, converts
 * Unicode labels to punycode. Returns `null` for something that is not a
 * domain name (empty, bad characters, an address literal).
 */
export function normalizeDomain(domain: string): string | null {
  const trimmed = domain.trim().replace(/\.$/, "");
  if (trimmed === "" || trimmed.length > 253 || trimmed.startsWith("[")) return null;
  const ascii = domainToASCII(trimmed.toLowerCase());
  if (ascii === "" || !/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(ascii)) return null;
  if (ascii.split(".").some((label) => label.length > 63 || label.length === 0)) return null;
  return ascii;
}

/**
 * Parses `local@domain` (no angle brackets). Returns `null` when there is no
 * `@`, the local part is empty or too long, or the domain is not valid.
 */
export function parseEmail(address: string): EmailAddress | null {
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return null;
  const local = address.slice(0, at);
  if (local.length > 64 || /[\s<>]/.test(local)) return null;
  const domain = normalizeDomain(address.slice(at + 1));
  if (domain === null) return null;
  return { local, domain, canonical: `${local.toLowerCase()}@${domain}` };
}

/** Whether two domains name the same tenant (case- and IDN-insensitive). */
export function sameDomain(a: string, b: string): boolean {
  const na = normalizeDomain(a);
  return na !== null && na === normalizeDomain(b);
}
