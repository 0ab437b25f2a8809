/**
 * ISO 8601 timestamps without a `Date` per record: a pooled message writes
 * a few log lines and audit records within the same millisecond, and they
 * can share one string.
 *
 * @module
 */

/**
 * A formatter of epoch milliseconds as `Date.prototype.toISOString()` text
 * that keeps its last result, so calls within the same millisecond build
 * nothing. Each user keeps its own (one entry, no thrashing between users).
 *
 * @example
 * ```ts
 * import { isoTimeFormatter } from "./iso_time.ts";
 *
 * const iso = isoTimeFormatter();
 * iso(0); // "1970-01-01T00:00:00.000Z"
 * ```
 *
 * @returns The formatter; like `toISOString()` it throws a `RangeError` for an invalid time.
 */
export function isoTimeFormatter(): (ms: number) => string {
  let lastMs = NaN;
  let last = "";
  return (ms) => {
    if (ms !== lastMs) {
      last = new Date(ms).toISOString();
      lastMs = ms;
    }
    return last;
  };
}
