/**
 * CPU time of a process from `/proc/<pid>/stat` (Linux): user + system time,
 * all threads included (workers count too).
 *
 * @module
 */

/** Clock ticks per second for `/proc` times (`getconf CLK_TCK`, 100 on Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Reads a process's CPU time (utime + stime) in milliseconds, with a
 * resolution of one clock tick (10 ms). Returns `null` when the process or
 * `/proc` is not there.
 *
 * @param pid the process id, or `"self"` for this process
 */
export async function readCpuMs(pid: number | "self"): Promise<number | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  return parseStatCpuMs(text);
}

/**
 * Parses utime + stime out of a `/proc/<pid>/stat` line, in milliseconds.
 * The command name (field 2) may contain spaces and parentheses, so fields
 * are counted from the last `)`.
 */
export function parseStatCpuMs(stat: string): number | null {
  const close = stat.lastIndexOf(")");
  if (close === -1) return null;
  // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
  const fields = stat.slice(close + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}
