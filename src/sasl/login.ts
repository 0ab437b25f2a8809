/**
 * SASL LOGIN (draft-murchison-sasl-login): the server asks `Username:` then
 * `Password:`; each answer is one message. Obsolete but what Outlook and many
 * devices still send.
 *
 * @module
 */
import type { SaslMechanism, SaslStep } from "./mechanism.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const USERNAME = new TextEncoder().encode("Username:");
const PASSWORD = new TextEncoder().encode("Password:");

/** Creates a LOGIN exchange; an initial response is taken as the user name. */
export function createLogin(): SaslMechanism {
  let username: string | null = null;
  const take = (response: Uint8Array): SaslStep => {
    let text: string;
    try {
      text = utf8.decode(response);
    } catch {
      return { type: "malformed", message: "LOGIN response is not valid UTF-8" };
    }
    if (text === "" || text.includes("\0")) {
      return { type: "malformed", message: "LOGIN user name and password must not be empty" };
    }
    if (username === null) {
      username = text;
      return { type: "challenge", challenge: PASSWORD };
    }
    return {
      type: "done",
      credentials: { kind: "password", authzid: "", authcid: username, password: text },
    };
  };
  return {
    name: "LOGIN",
    start: (initial) =>
      initial === null || initial.length === 0
        ? { type: "challenge", challenge: USERNAME }
        : take(initial),
    next: take,
  };
}
