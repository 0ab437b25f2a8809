/**
 * The shape every SASL mechanism codec has: a small state machine fed with
 * the client's decoded responses. Codecs are pure (no I/O, no verification);
 * the SMTP session base64-decodes lines, drives the codec, and hands the
 * resulting credentials to `auth/`.
 *
 * @module
 */

/** What a mechanism extracted from the exchange. */
export type SaslCredentials =
  | {
    kind: "password";
    /** The authentication identity (the user name). */
    authcid: string;
    /** The authorization identity; empty when the client gave none. */
    authzid: string;
    password: string;
  }
  | {
    kind: "bearer";
    /** The user the client claims to be, when the mechanism carries one. */
    user: string | null;
    token: string;
    /** Which wire format carried it (for the audit trail). */
    format: string;
  };

/** One step of an exchange. */
export type SaslStep =
  /** Send `334 <base64 challenge>` and wait for the next response. */
  | { type: "challenge"; challenge: Uint8Array }
  /** The exchange is complete; verify these credentials. */
  | { type: "done"; credentials: SaslCredentials }
  /** The client's data is malformed: `501 5.5.2` with this text. */
  | { type: "malformed"; message: string };

/** A server-side SASL mechanism instance, one per AUTH command. */
export interface SaslMechanism {
  /** The mechanism name as advertised (`PLAIN`). */
  readonly name: string;
  /**
   * Starts the exchange with the initial response (`null` when the client
   * sent none; an empty array for `=`).
   */
  start(initial: Uint8Array | null): SaslStep;
  /** Feeds the client's next decoded response. */
  next(response: Uint8Array): SaslStep;
}
