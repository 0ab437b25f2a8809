/**
 * SASL OAUTHBEARER (RFC 7628): a GS2 header naming the user, then
 * `\x01`-separated key/value pairs with `auth=Bearer <token>` (and optional
 * `host`, `port`), ending with `\x01\x01`:
 * `n,a=user@example.com,\x01host=mx.example.com\x01port=587\x01auth=Bearer <token>\x01\x01`.
 *
 * On a rejected token the server sends a `334` failure challenge
 * ({@link oauthbearerFailureChallenge}); the client answers `\x01`
 * ({@link isOAuthFailureAck}) and the server then replies `535 5.7.8`.
 *
 * @example Decode an initial response
 * ```ts
 * import { decodeOAuthBearer } from "./oauthbearer.ts";
 *
 * const step = decodeOAuthBearer(
 *   new TextEncoder().encode("n,a=a@example.com,\x01auth=Bearer abc.def.ghi\x01\x01"),
 * );
 * // step: { type: "done", credentials: { kind: "bearer", user: "a@example.com", ... } }
 * ```
 *
 * @module
 */
import type { SaslMechanism, SaslStep } from "./mechanism.ts";
import { parseBearerAuth } from "./xoauth2.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

function malformed(message: string): SaslStep {
  return { type: "malformed", message };
}

/** Decodes an RFC 5801 saslname (`=2C` is `,`, `=3D` is `=`); `null` if invalid. */
function decodeSaslname(value: string): string | null {
  if (/=(?!2C|3D)/.test(value)) return null;
  return value.replaceAll("=2C", ",").replaceAll("=3D", "=");
}

/** The parts of an OAUTHBEARER client message. */
export interface OAuthBearerMessage {
  /** The authorization identity from `a=`, or `null`. */
  user: string | null;
  /** The token from `auth=Bearer <token>`. */
  token: string;
  host: string | null;
  port: number | null;
}

/**
 * Decodes one OAUTHBEARER client message. Channel binding (`p=`) is not
 * supported; `y` and `n` flags are accepted.
 */
export function decodeOAuthBearer(message: Uint8Array): SaslStep {
  let text: string;
  try {
    text = utf8.decode(message);
  } catch {
    return malformed("OAUTHBEARER message is not valid UTF-8");
  }
  const header = /^([ny]),(?:a=([^,]*))?,/.exec(text);
  if (!header) {
    return malformed(
      text.startsWith("p=")
        ? "OAUTHBEARER channel binding is not supported"
        : "OAUTHBEARER message must start with a GS2 header (n,a=user,)",
    );
  }
  let user: string | null = null;
  if (header[2] !== undefined) {
    user = decodeSaslname(header[2]);
    if (user === null || user === "") return malformed("OAUTHBEARER authzid is not a valid name");
  }
  const rest = text.slice(header[0].length);
  if (!rest.startsWith("\x01") || !rest.endsWith("\x01\x01") || rest.length < 3) {
    return malformed("OAUTHBEARER key/value pairs must be framed by ^A separators");
  }
  let auth: string | null = null;
  const fields = new Map<string, string>();
  for (const pair of rest.slice(1, -2).split("\x01")) {
    const match = /^([A-Za-z]+)=([\x20-\x7e\t\r\n]*)$/.exec(pair);
    if (!match) return malformed("OAUTHBEARER key/value pair is malformed");
    if (fields.has(match[1])) return malformed(`OAUTHBEARER ${match[1]} is repeated`);
    fields.set(match[1], match[2]);
    if (match[1] === "auth") auth = match[2];
  }
  if (auth === null) return malformed("OAUTHBEARER message needs auth=Bearer <token>");
  const token = parseBearerAuth(auth);
  if (token === null) return malformed("OAUTHBEARER auth value is not a bearer token");
  const port = fields.get("port");
  if (port !== undefined && !/^\d{1,5}$/.test(port)) {
    return malformed("OAUTHBEARER port is not a number");
  }
  return { type: "done", credentials: { kind: "bearer", user, token, format: "oauthbearer" } };
}

/**
 * Parses a message into its parts (for callers that want host and port);
 * `null` when malformed.
 */
export function parseOAuthBearer(message: Uint8Array): OAuthBearerMessage | null {
  const step = decodeOAuthBearer(message);
  if (step.type !== "done" || step.credentials.kind !== "bearer") return null;
  const text = utf8.decode(message);
  const value = (key: string) => new RegExp(`\\x01${key}=([^\\x01]*)`).exec(text)?.[1] ?? null;
  const port = value("port");
  return {
    user: step.credentials.user,
    token: step.credentials.token,
    host: value("host"),
    port: port === null ? null : Number(port),
  };
}

/** Creates an OAUTHBEARER exchange: an empty challenge when no initial response came. */
export function createOAuthBearer(): SaslMechanism {
  return {
    name: "OAUTHBEARER",
    start: (initial) =>
      initial === null || initial.length === 0
        ? { type: "challenge", challenge: new Uint8Array() }
        : decodeOAuthBearer(initial),
    next: (response) => decodeOAuthBearer(response),
  };
}

/**
 * The JSON sent (base64-encoded) in the `334` failure challenge
 * (RFC 7628 3.2.2): `{"status":"invalid_token","scope":"smtp.send",
 * "openid-configuration":"https://.../.well-known/openid-configuration"}`.
 */
export function oauthbearerFailureChallenge(
  status: string,
  scope: string,
  openidConfiguration?: string,
): Uint8Array {
  return encoder.encode(JSON.stringify({
    status,
    scope,
    ...(openidConfiguration ? { "openid-configuration": openidConfiguration } : {}),
  }));
}

/**
 * Whether a client response ends an OAuth failure exchange: `\x01` (RFC
 * 7628 3.2.3) or, as XOAUTH2 clients send, an empty response. The session
 * then replies `535 5.7.8`.
 */
export function isOAuthFailureAck(response: Uint8Array): boolean {
  return response.length === 0 || (response.length === 1 && response[0] === 0x01);
}
