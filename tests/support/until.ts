/**
 * The one way tests wait for a state: poll a check until it holds, or fail
 * naming what never happened. Tests never sleep and then assert; they wait
 * here for the state they expect.
 *
 * @module
 */

/** How long {@link until} waits by default: generous for a loaded 2-core CI machine. */
export const DEFAULT_WAIT_MS = 10_000;

/**
 * Resolves once `check` returns (or resolves to) `true`; polls every
 * `intervalMs`. Throws `timed out waiting for <what>` after `timeoutMs`.
 *
 * @example
 * ```ts
 * await until("the message in the outbox", async () => (await list(outbox)).length === 1);
 * ```
 */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number = DEFAULT_WAIT_MS,
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Calls `attempt` until it stops throwing and returns its result; rethrows
 * the last error after `timeoutMs`. For states read through a call that
 * fails until they hold (a file not written yet, a port not open yet).
 */
export async function eventually<T>(
  attempt: () => Promise<T>,
  timeoutMs: number = DEFAULT_WAIT_MS,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/**
 * Waits until at least `roomMs` are left in the current `windowMs` window of
 * the wall clock (which is also Redis's `TIME` on this host). Limits counted
 * in sliding windows on a clock tests cannot inject (Redis) weigh the hits
 * of the previous window by how much of it still overlaps: a burst that
 * straddles a boundary counts a little less than whole (3 + 3 × 0.99 is not
 * 6). Hits made right after this fall into one window and count whole.
 */
export async function untilWindowRoom(windowMs: number, roomMs: number): Promise<void> {
  if (roomMs >= windowMs) throw new RangeError("roomMs must be shorter than the window");
  await until(
    `${roomMs} ms left in the current ${windowMs} ms window`,
    () => windowMs - (Date.now() % windowMs) >= roomMs,
    windowMs - roomMs + DEFAULT_WAIT_MS,
    50,
  );
}
