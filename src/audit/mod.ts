/**
 * The audit trail: security events as JSON lines.
 *
 * @module
 */
export { type AuditEvent, type AuditLog, MemoryAuditLog } from "./audit_log.ts";
export { FileAuditLog, type FileAuditLogOptions } from "./file_audit_log.ts";
