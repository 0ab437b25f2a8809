/**
 * The audit trail port: security-relevant events, one JSON object each.
 * Events never carry a password or token; the session passes identities,
 * addresses and reasons only (and the file log redacts such fields anyway,
 * see {@linkcode redactAuditField}).
 *
 * @module
 */
import { isoTimeFormatter } from "../observability/iso_time.ts";

/** One audit event. `event` names it (`auth_attempt`, `message_accepted`...). */
export interface AuditEvent {
  /** The event's name. */
  event: string;
  /** Any other field: identities, addresses, reasons, counts. */
  [field: string]: unknown;
}

/** Where audit events go. */
export interface AuditLog {
  /** Records an event; never throws, never blocks the caller on I/O. */
  record(event: AuditEvent): void;
  /** Writes out anything buffered. Never rejects; a failure shows in {@linkcode AuditLog.healthy}. */
  flush(): Promise<void>;
  /** Flushes and releases the file. */
  close(): Promise<void>;
  /**
   * False while events cannot be written (full disk, unwritable file): they
   * are dropped and counted. True again after the next successful write.
   */
  readonly healthy: boolean;
  /**
   * `[audit] required`: no new mail may be accepted while the trail is not
   * {@linkcode AuditLog.healthy} (the session answers `451 4.3.0`).
   */
  readonly required: boolean;
}

/** What a redacted field's value becomes. */
export const REDACTED = "[REDACTED]";

/**
 * Whether a field must never reach the audit trail: any key that names a
 * password, secret, token or authorization header (`password`,
 * `bind_password`, `client_secret`, `access_token`, `refreshToken`,
 * `Authorization`...). `token_type` and similar descriptions stay.
 *
 * @param key A field name at any depth of an event.
 * @returns True when its value is to be replaced by {@linkcode REDACTED}.
 */
export function redactAuditField(key: string): boolean {
  const name = key.toLowerCase().replace(/[-_]/g, "");
  return name.endsWith("password") || name.endsWith("passwd") || name.endsWith("secret") ||
    name.endsWith("token") || name.endsWith("authorization");
}

/**
 * Serializes an event as one JSON line (no newline) with `ts` first,
 * redacting sensitive fields at any depth (booleans and nulls stay, so
 * `{ has_token: true }` keeps its meaning). An event that cannot be
 * serialized (a cycle, a BigInt) becomes a line naming the problem.
 *
 * The line is what `JSON.stringify({ ts, ...event }, redactor)` gives, where
 * the redactor replaces the value of every key {@linkcode redactAuditField}
 * names; an event whose fields are all strings, numbers, booleans or null
 * (the hot path: accepted and relayed messages, logins) is written field by
 * field instead, with each name's verdict looked up once.
 *
 * @param event The event.
 * @param ts Its ISO timestamp, unless the event carries its own `ts`.
 * @returns The JSON text.
 */
export function serializeAuditEvent(event: AuditEvent, ts: string): string {
  try {
    return flatLine(event, ts) ?? JSON.stringify({ ts, ...event }, redactor);
  } catch (error) {
    return JSON.stringify({
      ts,
      event: typeof event.event === "string" ? event.event : "unknown",
      audit_error: `event could not be serialized: ${
        error instanceof Error ? error.name : "error"
      }`,
    });
  }
}

/** The line of an event without nested values, or `null` to let the replacer walk it. */
function flatLine(event: AuditEvent, ts: string): string | null {
  let redacts = false;
  for (const key in event) {
    const field = auditField(key);
    if (field === null) return null;
    const value = event[key];
    if (typeof value === "object" && value !== null) return null;
    if (field.redact) redacts = true;
  }
  const head = `{"ts":${JSON.stringify(ts)}`;
  if (!redacts) {
    // Nothing to redact: the engine's own serializer, then `ts` put in front.
    const json = JSON.stringify(event);
    return json === "{}" ? head + "}" : head + "," + json.slice(1);
  }
  let line = head;
  for (const key in event) {
    if (!Object.hasOwn(event, key)) continue;
    const field = auditField(key)!;
    const value = event[key];
    if (value === undefined) continue;
    if (value === null || typeof value === "boolean") line += field.prefix + value;
    else if (field.redact) line += field.prefix + REDACTED_JSON;
    else if (typeof value === "string" || typeof value === "number") {
      line += field.prefix + JSON.stringify(value);
    } else if (typeof value === "function" || typeof value === "symbol") continue;
    else return null;
  }
  return line + "}";
}

const REDACTED_JSON = JSON.stringify(REDACTED);
const MAX_FIELDS = 1000;
const fields = new Map<string, { prefix: string; redact: boolean } | null>();

/**
 * A field's `,"name":` and whether its value is redacted, or `null` for a
 * name that the object form would place elsewhere (`ts`, integer-like names)
 * or serialize differently (`toJSON`).
 */
function auditField(key: string): { prefix: string; redact: boolean } | null {
  let field = fields.get(key);
  if (field !== undefined) return field;
  const first = key.charCodeAt(0);
  field = key === "ts" || key === "toJSON" || (first >= 48 && first <= 57)
    ? null
    : { prefix: `,${JSON.stringify(key)}:`, redact: redactAuditField(key) };
  if (fields.size < MAX_FIELDS) fields.set(key, field);
  return field;
}

function redactor(key: string, value: unknown): unknown {
  if (key === "" || value === null || value === undefined || typeof value === "boolean") {
    return value;
  }
  return redactAuditField(key) ? REDACTED : value;
}

/** An audit log that keeps events in memory (tests) or drops them. */
export class MemoryAuditLog implements AuditLog {
  /** Events recorded so far, with timestamps. */
  readonly events: AuditEvent[] = [];
  /** Settable, so a test can play an audit outage. */
  healthy = true;
  /** Settable, so a test can play `[audit] required = true`. */
  required = false;
  #limit: number;
  #iso = isoTimeFormatter();

  /** @param limit events kept before the oldest are dropped */
  constructor(limit = 10_000) {
    this.#limit = limit;
  }

  /** Keeps the event with a `ts`. */
  record(event: AuditEvent): void {
    this.events.push({ ts: this.#iso(Date.now()), ...event });
    if (this.events.length > this.#limit) this.events.shift();
  }

  /** Nothing to write. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
