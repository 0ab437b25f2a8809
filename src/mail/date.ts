/**
 * Dates as RFC 5322 writes them, for trace headers and DSNs.
 *
 * @module
 */

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Formats a date as RFC 5322 `date-time` in UTC: `Fri, 27 Nov 2026 21:30:00 +0000`. */
export function rfc5322Date(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${
    MONTHS[date.getUTCMonth()]
  } ${date.getUTCFullYear()} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${
    p(date.getUTCSeconds())
  } +0000`;
}
