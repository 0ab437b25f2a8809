/**
 * The envelope of a message (RFC 5321 MAIL FROM / RCPT TO plus what we know
 * of its submission) and its queue id. Shared by the session that makes it,
 * the spool that stores it and the backends that deliver it.
 *
 * @module
 */

/** Everything known about a message besides its bytes. */
export interface Envelope {
  /** Format version. */
  v: 1;
  /** Queue id. */
  id: string;
  /** Envelope sender (MAIL FROM), `""` for the null sender. */
  from: string;
  /** Envelope recipients (RCPT TO), in order, as given. */
  recipients: string[];
  /** ISO time the message was accepted. */
  receivedAt: string;
  /** BODY= parameter. */
  body?: "7BIT" | "8BITMIME";
  /** SMTPUTF8 was requested. */
  smtputf8?: boolean;
  /** Who submitted it. */
  client: {
    address: string;
    helo: string;
    /** Authenticated identity. */
    user?: string;
    /** `TLSv1.3 TLS_AES_256_GCM_SHA384`. */
    tls?: string;
  };
}

/** Creates a queue id: time-ordered hex plus randomness, e.g. `19C2F3A4B5C-9F3A0C11E2`. */
export function newQueueId(now: number = Date.now()): string {
  const random = crypto.getRandomValues(new Uint8Array(5));
  return `${now.toString(16)}${random.toHex()}`.toUpperCase();
}

/** Whether `id` looks like a queue id (guards file names built from user input). */
export function isQueueId(id: string): boolean {
  return /^[0-9A-F]{10,16}[0-9A-F]{10}$/.test(id);
}
