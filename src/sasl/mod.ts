/**
 * SASL mechanism codecs (pure state machines, no I/O): PLAIN, LOGIN, and the
 * OAuth2 bearer mechanisms XOAUTH2 and OAUTHBEARER with their failure
 * challenges.
 *
 * @module
 */
export type { SaslCredentials, SaslMechanism, SaslStep } from "./mechanism.ts";
export { createPlain, decodePlain } from "./plain.ts";
export { createLogin } from "./login.ts";
export { createXoauth2, decodeXoauth2, xoauth2FailureChallenge } from "./xoauth2.ts";
export {
  createOAuthBearer,
  decodeOAuthBearer,
  isOAuthFailureAck,
  oauthbearerFailureChallenge,
} from "./oauthbearer.ts";
