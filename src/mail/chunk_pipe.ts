/**
 * A bounded hand-over of message bytes from a session that pushes them as
 * they arrive to a consumer that pulls them (a pass-through relay).
 *
 * @module
 */

/**
 * A bounded hand-over from a producer that pushes chunks to a consumer that
 * pulls them (`for await`). `drain()` gives the producer back-pressure;
 * `end(error)` makes the consumer's loop throw, which aborts a streamed
 * transaction before its final dot, so the backend delivers nothing.
 * Pushed chunks are kept, not copied: do not reuse their memory.
 */
export class ChunkPipe implements AsyncIterable<Uint8Array> {
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #limit: number;
  #ended = false;
  #error: { error: unknown } | null = null;
  #wakeReader: (() => void) | null = null;
  #space: { promise: Promise<void>; resolve: () => void } | null = null;

  /** @param highWaterMark buffered bytes above which `drain()` waits (default 256 KiB) */
  constructor(highWaterMark = 256 * 1024) {
    this.#limit = highWaterMark;
  }

  /** Adds a chunk for the consumer. */
  push(chunk: Uint8Array): void {
    if (this.#ended) throw new Error("ChunkPipe: push after end");
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#wake();
  }

  /** Resolves once the consumer has taken enough; undefined when there is room now. */
  drain(): Promise<void> | undefined {
    if (this.#buffered <= this.#limit || this.#ended) return undefined;
    this.#space ??= Promise.withResolvers<void>();
    return this.#space.promise;
  }

  /** Ends the stream: normally, or with an error the consumer will throw. */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    if (error !== undefined) this.#error = { error };
    this.#wake();
    this.#release();
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = null;
    wake?.();
  }

  #release(): void {
    const space = this.#space;
    this.#space = null;
    space?.resolve();
  }

  /** Yields the chunks in order; throws the error given to `end`. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.#error) throw this.#error.error;
      const chunk = this.#chunks.shift();
      if (chunk) {
        this.#buffered -= chunk.length;
        if (this.#buffered <= this.#limit) this.#release();
        yield chunk;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => this.#wakeReader = resolve);
    }
  }
}
