/**
 * Deadlines for a session's reads (slowloris defence). Every limit is a
 * deadline counted from a fixed start, never an idle timer restarted by
 * each byte: a client trickling one byte every few seconds is cut off as
 * surely as a silent one.
 *
 * - a command line (or SASL response) must be complete within `commandMs`
 *   of the server starting to wait for it;
 * - DATA must be complete within `dataMs` of the `354`, and after a grace
 *   period it must have averaged at least `minBytesPerSecond`;
 * - the whole session ends `sessionMs` after the connection was accepted.
 *
 * The functions are pure: they take the clock's readings and answer how
 * many milliseconds the next read may wait, and which limit that is.
 *
 * @module
 */

/** Read deadlines of one session, in milliseconds (rates in bytes per second). */
export interface DeadlineLimits {
  /** A command line or SASL response must arrive within this. */
  commandMs: number;
  /** The whole DATA section must arrive within this. */
  dataMs: number;
  /** Least average DATA rate once `dataGraceMs` has passed; 0: no minimum. */
  minBytesPerSecond: number;
  /** Time DATA may take before the minimum rate applies. */
  dataGraceMs: number;
  /** Longest session; 0: unlimited. */
  sessionMs: number;
}

/** Which limit a deadline comes from (the 421 text and the audit event name it). */
export type DeadlineKind = "command" | "data" | "data_rate" | "session";

/** How long the next read may wait, and which limit ends it. */
export interface ReadDeadline {
  /** Milliseconds from now; 0 or less: already passed. */
  ms: number;
  kind: DeadlineKind;
}

/** The earlier of `deadline` and the end of the session. */
function capBySession(
  deadline: ReadDeadline,
  limits: DeadlineLimits,
  sessionStart: number,
  now: number,
): ReadDeadline {
  if (limits.sessionMs <= 0) return deadline;
  const left = sessionStart + limits.sessionMs - now;
  return left < deadline.ms ? { ms: left, kind: "session" } : deadline;
}

/**
 * The deadline for a command line the server starts waiting for at `now`.
 *
 * @param sessionStart when the connection was accepted (same clock as `now`)
 */
export function commandDeadline(
  limits: DeadlineLimits,
  sessionStart: number,
  now: number,
): ReadDeadline {
  return capBySession({ ms: limits.commandMs, kind: "command" }, limits, sessionStart, now);
}

/**
 * The deadline for the next DATA read: the total DATA deadline, the moment
 * the bytes received so far fall below the minimum average rate (never
 * before the grace period ends), or the session's end, whichever is first.
 *
 * @param dataStart when the `354` was sent
 * @param received DATA bytes received so far
 */
export function dataDeadline(
  limits: DeadlineLimits,
  sessionStart: number,
  dataStart: number,
  received: number,
  now: number,
): ReadDeadline {
  let deadline: ReadDeadline = { ms: dataStart + limits.dataMs - now, kind: "data" };
  if (limits.minBytesPerSecond > 0) {
    // At `received / rate` seconds after the start the average drops below the rate.
    const rateEnd = dataStart +
      Math.max(limits.dataGraceMs, (received / limits.minBytesPerSecond) * 1000);
    if (rateEnd - now < deadline.ms) deadline = { ms: rateEnd - now, kind: "data_rate" };
  }
  return capBySession(deadline, limits, sessionStart, now);
}
