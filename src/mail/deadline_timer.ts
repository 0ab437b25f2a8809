/**
 * A deadline kept on at most one lazily re-armed timer, the way
 * high-volume servers keep their I/O timeouts: setting a deadline only
 * records when it falls, so a connection that sets one per command line or
 * per reply costs no timer work per operation.
 *
 * The one timer is re-armed only when it fires before the recorded
 * deadline (it then waits for the remainder), or when a new deadline falls
 * before the armed timer. Clearing records "none": the armed timer, when it
 * fires, finds nothing to do and is gone.
 *
 * @example A read deadline that moves on with every command
 * ```ts
 * import { DeadlineTimer } from "./deadline_timer.ts";
 *
 * const deadline = new DeadlineTimer(() => console.log("too slow"));
 * deadline.set(300_000); // arms the one timer
 * deadline.set(300_000); // later: only recorded
 * deadline.clear();
 * deadline.dispose(); // the timer goes now, not when it would have fired
 * ```
 *
 * @module
 */
import { TimerQueue } from "./timer_queue.ts";

/** The timer functions a {@linkcode DeadlineTimer} uses (injectable for tests). */
export interface TimerFunctions {
  /** Calls `callback` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer set by `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** Options for {@linkcode DeadlineTimer}. */
export interface DeadlineTimerOptions {
  /** Monotonic clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /** Timer functions (default one {@linkcode TimerQueue} per thread, on the global `setTimeout`). */
  timers?: TimerFunctions;
}

/**
 * The default: one queue per thread, so a thousand idle connections hold one
 * runtime timer, not a thousand (~1.5 KiB each; see timer_queue.ts).
 */
const sharedTimers: TimerFunctions = new TimerQueue();

const NONE = Infinity;

/**
 * One deadline at a time, on at most one armed timer. `onExpire` runs once
 * each time a recorded deadline passes (never for a cleared or replaced
 * one).
 */
export class DeadlineTimer {
  #onExpire: () => void;
  #now: () => number;
  #timers: TimerFunctions;
  /** When the recorded deadline falls; {@link NONE}: no deadline. */
  #deadline = NONE;
  /** When the armed timer fires; meaningful only while `#handle` is set. */
  #due = NONE;
  #handle: unknown = undefined;
  #armed = false;
  #disposed = false;

  /**
   * @param onExpire called when a deadline passes
   * @param options clock and timer functions
   */
  constructor(onExpire: () => void, options: DeadlineTimerOptions = {}) {
    this.#onExpire = onExpire;
    this.#now = options.now ?? (() => performance.now());
    this.#timers = options.timers ?? sharedTimers;
  }

  /** Whether a deadline is recorded and has not passed yet. */
  get pending(): boolean {
    return this.#deadline !== NONE;
  }

  /** Whether a timer is armed (at most one ever is). */
  get armed(): boolean {
    return this.#armed;
  }

  /**
   * Records a deadline `ms` from now, replacing the previous one. A
   * deadline already passed (`ms <= 0`) expires at once, synchronously.
   * Does nothing once disposed.
   */
  set(ms: number): void {
    if (this.#disposed) return;
    if (!(ms > 0)) {
      this.#deadline = NONE;
      this.#onExpire();
      return;
    }
    const at = this.#now() + ms;
    this.#deadline = at;
    if (!this.#armed || at < this.#due) this.#arm(at);
  }

  /** Records "no deadline"; an armed timer is left to lapse on its own. */
  clear(): void {
    this.#deadline = NONE;
  }

  /** Clears the deadline and cancels the timer; later `set` calls do nothing. */
  dispose(): void {
    this.#disposed = true;
    this.#deadline = NONE;
    this.#cancel();
  }

  /** Disposes the timer when used with `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #arm(at: number): void {
    this.#cancel();
    this.#due = at;
    this.#armed = true;
    // Whole milliseconds, at least one: a timer a fraction early re-arms once, not in a loop.
    this.#handle = this.#timers.setTimeout(this.#fire, Math.max(1, Math.ceil(at - this.#now())));
  }

  #cancel(): void {
    if (!this.#armed) return;
    this.#timers.clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#armed = false;
  }

  #fire = (): void => {
    this.#handle = undefined;
    this.#armed = false;
    const deadline = this.#deadline;
    if (deadline === NONE) return;
    if (this.#now() < deadline) {
      // The deadline moved on since the timer was armed: wait for the rest.
      this.#arm(deadline);
      return;
    }
    this.#deadline = NONE;
    this.#onExpire();
  };
}
