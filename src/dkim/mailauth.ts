/**
 * A typed face on the parts of npm `mailauth` (7.1.0) the signer uses: the
 * relaxed body hash, header parsing, header selection and canonicalization,
 * and the signature header's formatting. The DKIM mechanics stay the
 * library's; we call its pieces one by one so that the body hash can be fed
 * while DATA streams in and the signature made once the body has ended.
 *
 * @module
 */
import { Buffer } from "node:buffer";
// The library's internals are CommonJS without type declarations.
import bodyModule from "mailauth/lib/dkim/body/index.js";
import headerModule from "mailauth/lib/dkim/header/index.js";
import toolsModule from "mailauth/lib/tools.js";

/** One parsed header field, as mailauth keeps it. */
export interface ParsedHeader {
  /** Lower-cased field name. */
  key: string | null;
  /** Field name as written. */
  casedKey: string | undefined;
  /** The whole field (folded lines joined by CRLF), without the final CRLF. */
  line: Buffer;
}

/** A header block split into fields. */
export interface ParsedHeaders {
  parsed: ParsedHeader[];
  original: Buffer;
}

/** The fields a signature covers, bottom-up, and its `h=` value. */
export interface SigningHeaderLines {
  keys: string;
  headers: ParsedHeader[];
}

/** A streaming body hash (mailauth's `RelaxedHash`/`SimpleHash`). */
export interface BodyHash {
  update(chunk: Buffer): void;
  digest(encoding: "base64"): string;
}

/** The tags of a signature header being made. */
export interface SignatureTags {
  [tag: string]: string | number | null | undefined;
}

interface MailauthBody {
  dkimBody(canonicalization: string, algorithm: string, maxBodyLength: false): BodyHash;
}
interface MailauthHeader {
  generateCanonicalizedHeader(
    type: "DKIM",
    lines: SigningHeaderLines,
    options: Record<string, unknown>,
  ): { canonicalizedHeader: Buffer; dkimHeaderOpts: SignatureTags };
}
interface MailauthTools {
  parseHeaders(buf: Buffer): ParsedHeaders;
  getSigningHeaderLines(parsed: ParsedHeader[], fieldNames: string): SigningHeaderLines;
  formatSignatureHeaderLine(type: "DKIM", values: SignatureTags, folded: boolean): string;
  defaultDKIMFieldNames: string;
}

const body = bodyModule as unknown as MailauthBody;
const header = headerModule as unknown as MailauthHeader;
const tools = toolsModule as unknown as MailauthTools;

/** mailauth's default list of signed header fields (From, Subject, Date, To, MIME fields, List-*...). */
export const DEFAULT_SIGNED_FIELDS: string = tools.defaultDKIMFieldNames;

/** A new relaxed (or simple) SHA-256 body hash. */
export function bodyHash(canonicalization: "relaxed" | "simple"): BodyHash {
  return body.dkimBody(canonicalization, "sha256", false);
}

/** Splits a header block (without the empty line) into fields. */
export function parseHeaders(block: Uint8Array): ParsedHeaders {
  return tools.parseHeaders(Buffer.from(block.buffer, block.byteOffset, block.byteLength));
}

/** The present fields named in `fieldNames` (colon-separated), bottom-up. */
export function signingHeaderLines(
  headers: ParsedHeaders,
  fieldNames: string,
): SigningHeaderLines {
  return tools.getSigningHeaderLines(headers.parsed, fieldNames);
}

/** The bytes a signature signs (relaxed header canonicalization) and its tags. */
export function canonicalizedHeader(
  lines: SigningHeaderLines,
  options: Record<string, unknown>,
): { canonicalizedHeader: Buffer; dkimHeaderOpts: SignatureTags } {
  return header.generateCanonicalizedHeader("DKIM", lines, {
    ...options,
    canonicalization: "relaxed/relaxed",
  });
}

/** The folded `DKIM-Signature:` field for these tags (no final CRLF). */
export function formatSignatureHeader(tags: SignatureTags): string {
  return tools.formatSignatureHeaderLine("DKIM", tags, true);
}
