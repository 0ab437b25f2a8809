/**
 * The audit trail port: security-relevant events, one JSON object each.
 * Events never carry a password or token; the session passes identities,
 * addresses and reasons only.
 *
 * @module
 */

/** One audit event. `event` names it (`auth_attempt`, `message_accepted`...). */
export interface AuditEvent {
  event: string;
  [field: string]: unknown;
}

/** Where audit events go. */
export interface AuditLog {
  /** Records an event; never throws, never blocks the caller on I/O. */
  record(event: AuditEvent): void;
  /** Writes out anything buffered. */
  flush(): Promise<void>;
  /** Flushes and releases the file. */
  close(): Promise<void>;
}

/** An audit log that keeps events in memory (tests) or drops them. */
export class MemoryAuditLog implements AuditLog {
  /** Events recorded so far, with timestamps. */
  readonly events: AuditEvent[] = [];
  #limit: number;

  /** @param limit events kept before the oldest are dropped */
  constructor(limit = 10_000) {
    this.#limit = limit;
  }

  record(event: AuditEvent): void {
    this.events.push({ ts: new Date().toISOString(), ...event });
    if (this.events.length > this.#limit) this.events.shift();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
