/**
 * Making DKIM signatures in two steps, so that a message is read once:
 * a {@link BodyHasher} is fed the body while DATA streams in, and
 * {@link signHeaderBlock} signs the header block with that body hash once
 * the body has ended. The canonicalization (relaxed/relaxed), header
 * selection and signature formatting are npm `mailauth`'s; the signature
 * itself is `node:crypto`'s, as in mailauth's own signer.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, type KeyObject, sign } from "node:crypto";
import {
  type BodyHash,
  bodyHash,
  canonicalizedHeader,
  defaultSignedFields,
  formatSignatureHeader,
  parseHeaders,
  signingHeaderLines,
} from "./mailauth.ts";
import type { DkimAlgorithm } from "./key_store.ts";

/** A private key ready to sign for a domain. */
export interface SigningKey {
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  privateKey: KeyObject;
}

/**
 * Fields signed once more than they occur ("over-signed", RFC 6376 8.15):
 * a verifier then fails a message to which one of them was added later.
 */
export const OVERSIGNED_FIELDS: readonly string[] = [
  "From",
  "To",
  "Subject",
  "Date",
  "Reply-To",
  "Message-ID",
];

/** The relaxed SHA-256 body hash of a message body, fed in chunks. */
export class BodyHasher {
  readonly #hash: BodyHash = bodyHash("relaxed");
  #digest: string | null = null;

  /** Adds body bytes (CRLF line ends, as spooled). */
  update(bytes: Uint8Array): void {
    if (this.#digest !== null) throw new Error("body hash already finished");
    if (bytes.length > 0) {
      this.#hash.update(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
  }

  /** The `bh=` value (base64); the hasher takes no more bytes after. */
  digest(): string {
    this.#digest ??= this.#hash.digest("base64");
    return this.#digest;
  }
}

/** What {@link signHeaderBlock} made. */
export interface Signatures {
  /** `DKIM-Signature:` fields, each ending in CRLF, to put in front of the message. */
  header: string;
  /** The keys that signed. */
  signed: SigningKey[];
  /** Why a key did not sign, one text per key. */
  errors: string[];
}

/** Options for {@link signHeaderBlock}. */
export interface SignOptions {
  /** The message's header block, without the empty line that ends it. */
  header: Uint8Array;
  /** The body's relaxed SHA-256 hash ({@link BodyHasher.digest}). */
  bodyHash: string;
  /** One signature per key. */
  keys: readonly SigningKey[];
  /** Signing time (`t=`). */
  now: Date;
}

/**
 * Signs a header block with every key (relaxed/relaxed, SHA-256): mailauth's
 * default field list, over-signing {@link OVERSIGNED_FIELDS}. A message
 * without a From: field is not signed (RFC 6376 5.4).
 */
export function signHeaderBlock(options: SignOptions): Signatures {
  const parsed = parseHeaders(options.header);
  const lines = signingHeaderLines(parsed, defaultSignedFields());
  const out: Signatures = { header: "", signed: [], errors: [] };
  if (!lines.headers.some((h) => h.key === "from")) {
    out.errors.push("no From: header field");
    return out;
  }
  // Appended names match no further field, so they add nothing to the hash
  // now; a field of that name added later would.
  const h = { keys: [lines.keys, ...OVERSIGNED_FIELDS].join(": "), headers: lines.headers };
  const timestamp = Math.floor(options.now.getTime() / 1000);
  for (const key of options.keys) {
    try {
      const algorithm = `${key.algorithm}-sha256`;
      const { canonicalizedHeader: data, dkimHeaderOpts: tags } = canonicalizedHeader(h, {
        signingDomain: key.domain,
        selector: key.selector,
        algorithm,
        bodyHash: options.bodyHash,
        timestamp,
        expiration: false,
      });
      // RFC 8463: Ed25519 signs the SHA-256 of the canonicalized header.
      tags.b = (key.algorithm === "rsa"
        ? sign(algorithm, data, key.privateKey)
        : sign(null, createHash("sha256").update(data).digest(), key.privateKey))
        .toString("base64");
      out.header += formatSignatureHeader(tags) + "\r\n";
      out.signed.push(key);
    } catch (error) {
      out.errors.push(`${key.selector}: ${error instanceof Error ? error.message : error}`);
    }
  }
  return out;
}
