/**
 * SASL XOAUTH2 (Google's bearer-token mechanism): one message
 * `user=<email>\x01auth=Bearer <token>\x01\x01`. Clients of the earlier
 * prototype send a JSON form instead:
 * `{"user": "...", "authMethod": "XOAUTH2", "authToken": "..."}`; both are
 * accepted.
 *
 * On a rejected token the server sends a `334` failure challenge
 * ({@link xoauth2FailureChallenge}); the client answers with an empty line
 * and the server then replies `535 5.7.8`.
 *
 * @example Decode an initial response
 * ```ts
 * import { decodeXoauth2 } from "./xoauth2.ts";
 *
 * const step = decodeXoauth2(
 *   new TextEncoder().encode("user=a@example.com\x01auth=Bearer abc.def.ghi\x01\x01"),
 * );
 * // step: { type: "done", credentials: { kind: "bearer", user: "a@example.com", ... } }
 * ```
 *
 * @module
 */
import type { SaslMechanism, SaslStep } from "./mechanism.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** An RFC 6750 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** Extracts the token from `Bearer <token>` (scheme case-insensitive), or `null`. */
export function parseBearerAuth(value: string): string | null {
  const match = /^bearer +(\S+)$/i.exec(value);
  return match && B64TOKEN.test(match[1]) ? match[1] : null;
}

function malformed(message: string): SaslStep {
  return { type: "malformed", message };
}

function decodeJson(text: string): SaslStep {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return malformed("XOAUTH2 JSON message is not valid JSON");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return malformed("XOAUTH2 JSON message must be an object");
  }
  const { user, authMethod, authToken } = doc as Record<string, unknown>;
  if (authMethod !== undefined && authMethod !== "XOAUTH2") {
    return malformed("XOAUTH2 JSON authMethod must be XOAUTH2");
  }
  if (typeof user !== "string" || user === "") {
    return malformed("XOAUTH2 JSON message needs a user");
  }
  if (typeof authToken !== "string") return malformed("XOAUTH2 JSON message needs an authToken");
  // Accept the bare token and the "Bearer <token>" form.
  const token = B64TOKEN.test(authToken) ? authToken : parseBearerAuth(authToken);
  if (token === null) return malformed("XOAUTH2 JSON authToken is not a bearer token");
  return { type: "done", credentials: { kind: "bearer", user, token, format: "xoauth2-json" } };
}

/**
 * Decodes one XOAUTH2 message (either form). Returns `malformed` unless it
 * has a non-empty `user` and an `auth=Bearer <token>` pair.
 */
export function decodeXoauth2(message: Uint8Array): SaslStep {
  let text: string;
  try {
    text = utf8.decode(message);
  } catch {
    return malformed("XOAUTH2 message is not valid UTF-8");
  }
  if (text.trimStart().startsWith("{")) return decodeJson(text);
  if (!text.endsWith("\x01\x01")) {
    return malformed("XOAUTH2 message must end with two ^A separators");
  }
  let user: string | null = null;
  let auth: string | null = null;
  for (const pair of text.slice(0, -2).split("\x01")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return malformed("XOAUTH2 message has a field without a key");
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (key === "user") user = value;
    else if (key === "auth") auth = value;
  }
  if (!user) return malformed("XOAUTH2 message needs a user");
  if (auth === null) return malformed("XOAUTH2 message needs auth=Bearer <token>");
  const token = parseBearerAuth(auth);
  if (token === null) return malformed("XOAUTH2 auth field is not a bearer token");
  return { type: "done", credentials: { kind: "bearer", user, token, format: "xoauth2" } };
}

/** Creates an XOAUTH2 exchange: an empty challenge when no initial response came. */
export function createXoauth2(): SaslMechanism {
  return {
    name: "XOAUTH2",
    start: (initial) =>
      initial === null || initial.length === 0
        ? { type: "challenge", challenge: new Uint8Array() }
        : decodeXoauth2(initial),
    next: (response) => decodeXoauth2(response),
  };
}

const HTTP_STATUS: Record<string, string> = {
  invalid_request: "400",
  invalid_token: "401",
  insufficient_scope: "403",
};

/**
 * The JSON sent (base64-encoded) in the `334` failure challenge, in
 * Google's form: `{"status":"401","schemes":"bearer","scope":"smtp.send"}`.
 * `status` is an RFC 6750 error code (mapped to its HTTP status) or a
 * numeric status.
 */
export function xoauth2FailureChallenge(status: string, scope: string): Uint8Array {
  const code = HTTP_STATUS[status] ?? (/^\d{3}$/.test(status) ? status : "401");
  return encoder.encode(JSON.stringify({ status: code, schemes: "bearer", scope }));
}
