/**
 * DKIM for submitted mail: per-domain keys on disk with their DNS records
 * and rotation schedule, and signing in two steps (body hash while DATA
 * streams in, signature at the end) around npm `mailauth`.
 *
 * @module
 */
export { type DkimDnsRecord, dnsRecord, TXT_STRING_MAX, zoneLine } from "./dns.ts";
export {
  checkDomain,
  type DkimAlgorithm,
  DkimKeyError,
  type DkimKeyInfo,
  type DkimKeyState,
  DkimKeyStore,
  type DomainKey,
  type GenerateOptions,
  keyState,
  publicKeyValue,
  type RotateOptions,
} from "./key_store.ts";
export { DkimKeyring } from "./keyring.ts";
export {
  BodyHasher,
  OVERSIGNED_FIELDS,
  type Signatures,
  signHeaderBlock,
  type SigningKey,
  type SignOptions,
} from "./signer.ts";
