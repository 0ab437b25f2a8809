/**
 * SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd` in one message.
 *
 * @module
 */
import type { SaslMechanism, SaslStep } from "./mechanism.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes one PLAIN message. Returns a `malformed` step unless it has exactly
 * three NUL-separated UTF-8 fields with a non-empty authcid and password.
 */
export function decodePlain(message: Uint8Array): SaslStep {
  let text: string;
  try {
    text = utf8.decode(message);
  } catch {
    return { type: "malformed", message: "PLAIN message is not valid UTF-8" };
  }
  const fields = text.split("\0");
  if (fields.length !== 3) {
    return { type: "malformed", message: "PLAIN message must have three NUL-separated fields" };
  }
  const [authzid, authcid, password] = fields;
  if (authcid === "" || password === "") {
    return { type: "malformed", message: "PLAIN user name and password must not be empty" };
  }
  return { type: "done", credentials: { kind: "password", authzid, authcid, password } };
}

/** Creates a PLAIN exchange: an empty challenge when no initial response came. */
export function createPlain(): SaslMechanism {
  return {
    name: "PLAIN",
    start: (initial) =>
      initial === null ? { type: "challenge", challenge: new Uint8Array() } : decodePlain(initial),
    next: (response) => decodePlain(response),
  };
}
