/**
 * A typed face on the parts of npm `mailauth` (7.1.0) the signer uses: the
 * relaxed body hash, header parsing, header selection and canonicalization,
 * and the signature header's formatting. The DKIM mechanics stay the
 * library's; we call its pieces one by one so that the body hash can be fed
 * while DATA streams in and the signature made once the body has ended.
 *
 * The library (~15 MB resident with its dependencies) is loaded by
 * {@link loadMailauth}, which {@link ./keyring.ts} calls once it holds a key:
 * a relay that signs nothing never loads it. The other functions throw until
 * it has been loaded.
 *
 * @module
 */
import { Buffer } from "node:buffer";

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

interface Mailauth {
  body: MailauthBody;
  header: MailauthHeader;
  tools: MailauthTools;
}

let loaded: Promise<Mailauth> | null = null;
let lib: Mailauth | null = null;

/** Loads mailauth's pieces once; later calls return at once. */
export function loadMailauth(): Promise<void> {
  // String literals, so that `deno compile` embeds the modules.
  // The library's internals are CommonJS without type declarations.
  loaded ??= Promise.all([
    import("mailauth/lib/dkim/body/index.js"),
    import("mailauth/lib/dkim/header/index.js"),
    import("mailauth/lib/tools.js"),
  ]).then(([body, header, tools]) => ({
    body: body.default as unknown as MailauthBody,
    header: header.default as unknown as MailauthHeader,
    tools: tools.default as unknown as MailauthTools,
  }));
  return loaded.then((value) => {
    lib = value;
  });
}

function mailauth(): Mailauth {
  if (lib === null) throw new Error("mailauth is not loaded: await loadMailauth() first");
  return lib;
}

/** mailauth's default list of signed header fields (From, Subject, Date, To, MIME fields, List-*...). */
export function defaultSignedFields(): string {
  return mailauth().tools.defaultDKIMFieldNames;
}

/** A new relaxed (or simple) SHA-256 body hash. */
export function bodyHash(canonicalization: "relaxed" | "simple"): BodyHash {
  return mailauth().body.dkimBody(canonicalization, "sha256", false);
}

/** Splits a header block (without the empty line) into fields. */
export function parseHeaders(block: Uint8Array): ParsedHeaders {
  return mailauth().tools.parseHeaders(
    Buffer.from(block.buffer, block.byteOffset, block.byteLength),
  );
}

/** The present fields named in `fieldNames` (colon-separated), bottom-up. */
export function signingHeaderLines(
  headers: ParsedHeaders,
  fieldNames: string,
): SigningHeaderLines {
  return mailauth().tools.getSigningHeaderLines(headers.parsed, fieldNames);
}

/** The bytes a signature signs (relaxed header canonicalization) and its tags. */
export function canonicalizedHeader(
  lines: SigningHeaderLines,
  options: Record<string, unknown>,
): { canonicalizedHeader: Buffer; dkimHeaderOpts: SignatureTags } {
  return mailauth().header.generateCanonicalizedHeader("DKIM", lines, {
    ...options,
    canonicalization: "relaxed/relaxed",
  });
}

/** The folded `DKIM-Signature:` field for these tags (no final CRLF). */
export function formatSignatureHeader(tags: SignatureTags): string {
  return mailauth().tools.formatSignatureHeaderLine("DKIM", tags, true);
}
