/**
 * The audit trail: security events as JSON lines, in a rotated file.
 *
 * @example
 * ```ts ignore
 * const audit = await FileAuditLog.open({ path: "logs/audit.jsonl", maxBytes: 100 * 1024 * 1024 });
 * audit.record({ event: "auth_attempt", email: "alice@example.com", success: true });
 * if (audit.required && !audit.healthy) {
 *   // refuse new mail: 451 4.3.0
 * }
 * await audit.close();
 * ```
 *
 * @module
 */
export {
  type AuditEvent,
  type AuditLog,
  MemoryAuditLog,
  redactAuditField,
  REDACTED,
  serializeAuditEvent,
} from "./audit_log.ts";
export { type AuditStats, FileAuditLog, type FileAuditLogOptions } from "./file_audit_log.ts";
export { observeAuditLog } from "./observed.ts";
