/**
 * Undo steps for a start-up that opens many things: each step is pushed as
 * soon as what it undoes exists, and `run` undoes them newest first. A step
 * that fails is reported and the others still run, so one stuck resource
 * cannot keep listeners, workers or files open.
 *
 * @module
 */

/** A list of undo steps; see the module documentation. */
export class Cleanups {
  #steps: (() => Promise<void> | void)[] = [];
  #onError: (error: unknown) => void;

  /** @param onError told of each step that throws (the run goes on) */
  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  /** Adds a step; it runs before every step pushed earlier. */
  push(step: () => Promise<void> | void): void {
    this.#steps.push(step);
  }

  /** Runs every step once, newest first; never rejects. */
  async run(): Promise<void> {
    const steps = this.#steps.reverse();
    this.#steps = [];
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        this.#onError(error);
      }
    }
  }
}
