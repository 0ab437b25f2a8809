/**
 * The DNS TXT records that publish DKIM public keys (RFC 6376 3.6.2):
 * `<selector>._domainkey.<domain>` with `v=DKIM1; k=<rsa|ed25519>; p=<key>`,
 * split into character-strings of at most 255 bytes (an RSA-2048 key does
 * not fit in one), printed as a zone-file line.
 *
 * @module
 */
import type { DomainKey } from "./key_store.ts";

/** One record to publish. */
export interface DkimDnsRecord {
  /** Owner name, without the final dot: `sel._domainkey.example.com`. */
  name: string;
  /** The TXT value, whole. */
  value: string;
  /** The value split into character-strings of at most 255 bytes. */
  strings: string[];
}

/** Longest character-string in a TXT record (RFC 1035 3.3). */
export const TXT_STRING_MAX = 255;

/** The record that publishes `key`. */
export function dnsRecord(
  key: Pick<DomainKey, "domain" | "selector" | "algorithm" | "publicKey">,
): DkimDnsRecord {
  const value = `v=DKIM1; k=${key.algorithm}; p=${key.publicKey}`;
  const strings: string[] = [];
  // The value is ASCII, so characters are bytes.
  for (let i = 0; i < value.length; i += TXT_STRING_MAX) {
    strings.push(value.slice(i, i + TXT_STRING_MAX));
  }
  return { name: `${key.selector}._domainkey.${key.domain}`, value, strings };
}

/** A zone-file line: `name. IN TXT "..." "..."`. */
export function zoneLine(record: DkimDnsRecord, ttl = 3600): string {
  return `${record.name}. ${ttl} IN TXT ${record.strings.map((s) => `"${s}"`).join(" ")}`;
}
