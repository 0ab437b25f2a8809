/**
 * A tee on the audit trail: every event is shown to an observer (metrics)
 * before it goes to the real log, so counters follow the same events the
 * trail records without the code that records them knowing.
 *
 * @module
 */
import type { AuditEvent, AuditLog } from "./audit_log.ts";

/**
 * Wraps `log` so that `observe` sees every recorded event first. An observer
 * that throws never stops the event reaching the log. `healthy` and
 * `required` are read through from `log`.
 *
 * @example
 * ```ts
 * import { MemoryAuditLog } from "./audit_log.ts";
 * import { observeAuditLog } from "./observed.ts";
 *
 * const names: string[] = [];
 * const audit = observeAuditLog(new MemoryAuditLog(), (event) => names.push(event.event));
 * audit.record({ event: "auth_attempt", success: true });
 * ```
 */
export function observeAuditLog(log: AuditLog, observe: (event: AuditEvent) => void): AuditLog {
  return {
    record(event: AuditEvent): void {
      try {
        observe(event);
      } catch {
        // Metrics are best effort; the trail is not.
      }
      log.record(event);
    },
    flush: () => log.flush(),
    close: () => log.close(),
    get healthy() {
      return log.healthy;
    },
    get required() {
      return log.required;
    },
  };
}
