/**
 * Token material: random opaque values, their storage hashes, PKCE, and the
 * RFC 9068 JWT access tokens the server signs.
 *
 * @module
 */
import { SignJWT } from "jose";
import { createHash, timingSafeEqual } from "node:crypto";
import type { SigningKeys } from "./keys.ts";

/** A fresh random value: `bytes` random bytes, base64url. */
export function randomToken(bytes = 32): string {
  return crypto.getRandomValues(new Uint8Array(bytes)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/** The value a code or refresh token is stored under: SHA-256, base64url. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

/** Compares two strings in constant time for equal lengths. */
export function safeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Whether a PKCE `code_verifier` is well formed (RFC 7636 4.1). */
export function isCodeVerifier(value: string): boolean {
  return /^[A-Za-z0-9\-._~]{43,128}$/.test(value);
}

/** Whether a PKCE `code_challenge` is a well-formed S256 challenge (32 bytes, base64url). */
export function isS256Challenge(value: string): boolean {
  return /^[A-Za-z0-9\-_]{43}$/.test(value);
}

/** The S256 challenge of a verifier: BASE64URL(SHA256(verifier)). */
export function s256(verifier: string): string {
  return createHash("sha256").update(verifier, "ascii").digest("base64url");
}

/** What an access token says. */
export interface AccessTokenGrant {
  issuer: string;
  audience: string;
  clientId: string;
  email: string;
  domain: string;
  /** Space-separated. */
  scope: string;
  /** The session (token family). */
  sid: string;
  ttlSeconds: number;
}

/** A signed access token. */
export interface SignedAccessToken {
  token: string;
  jti: string;
  /** Epoch seconds. */
  iat: number;
  /** Epoch seconds. */
  exp: number;
}

/**
 * Signs an RFC 9068 access token (`typ: at+jwt`, ES256) with the current
 * key. Claims: iss, sub, aud, exp, iat, nbf, jti, client_id, scope, email,
 * domain, and sid (the token family, for revocation).
 */
export async function signAccessToken(
  keys: SigningKeys,
  grant: AccessTokenGrant,
  nowMs: number,
): Promise<SignedAccessToken> {
  const { kid, key } = await keys.signingKey();
  const iat = Math.floor(nowMs / 1000);
  const exp = iat + grant.ttlSeconds;
  const jti = randomToken(16);
  const token = await new SignJWT({
    client_id: grant.clientId,
    scope: grant.scope,
    email: grant.email,
    // The account's own password (or directory bind) proved the address; relays that
    // trust this server as an external issuer require the flag.
    email_verified: true,
    domain: grant.domain,
    sid: grant.sid,
  })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid })
    .setIssuer(grant.issuer)
    .setSubject(grant.email)
    .setAudience(grant.audience)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key);
  return { token, jti, iat, exp };
}

/** What an OpenID Connect ID token says. */
export interface IdTokenGrant {
  issuer: string;
  /** The client: the token's `aud`. */
  clientId: string;
  email: string;
  /** The authorization request's `nonce`, if it had one. */
  nonce?: string | null;
  /** Epoch seconds of the sign-in. */
  authTime?: number;
  ttlSeconds: number;
}

/**
 * Signs an OpenID Connect ID token (ES256, `typ: JWT`) with the current key:
 * iss, sub (the email address, as in access tokens), aud (the client), exp,
 * iat, auth_time, nonce (when the request had one), email, email_verified
 * (addresses come from our own users files or directory).
 */
export async function signIdToken(
  keys: SigningKeys,
  grant: IdTokenGrant,
  nowMs: number,
): Promise<string> {
  const { kid, key } = await keys.signingKey();
  const iat = Math.floor(nowMs / 1000);
  return await new SignJWT({
    email: grant.email,
    email_verified: true,
    ...(grant.nonce ? { nonce: grant.nonce } : {}),
    ...(grant.authTime !== undefined ? { auth_time: grant.authTime } : {}),
  })
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid })
    .setIssuer(grant.issuer)
    .setSubject(grant.email)
    .setAudience(grant.clientId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + grant.ttlSeconds)
    .sign(key);
}
