/**
 * A batched LogTape sink for stderr: a log call formats its record and
 * appends the line to a buffer; the buffer goes out in ONE write at most
 * `flushIntervalMs` later, or at once when it holds `batchBytes`. One write
 * per batch instead of one write system call per record takes logging off
 * the hot path (a pooled message logs a few lines; under load a batch holds
 * hundreds).
 *
 * The batch write itself is synchronous, on purpose: it keeps lines in order
 * and never interleaves two writes on the same descriptor, and it is the
 * back-pressure when the reader of stderr (journald, a container runtime)
 * stalls, so nothing is ever dropped and the buffer stays bounded by
 * `batchBytes` plus one line.
 *
 * A clean stop loses nothing: LogTape's `reset()` disposes the sink, which
 * writes the rest, and `Deno.exit()` anywhere, the end of the program and
 * an uncaught error write the rest too (the `unload`, `error` and
 * `unhandledrejection` events). A crash the process cannot see (SIGKILL,
 * out of memory, a V8 abort) loses at most the lines of the last
 * `flushIntervalMs`.
 *
 * @module
 */
import type { LogRecord, Sink, TextFormatter } from "@logtape/logtape";

/** Where the batches go: `Deno.stderr` in production, a recorder in tests. */
export interface LogOutput {
  /** Writes some of `bytes`, returns how many (as `Deno.stderr.writeSync`). */
  writeSync(bytes: Uint8Array): number;
}

/** Options for {@linkcode batchedSink}. */
export interface BatchedSinkOptions {
  /** Longest a line waits in the buffer, ms (default 50). */
  flushIntervalMs?: number;
  /** Buffered characters that make a log call write the batch at once (default 64 KiB). */
  batchBytes?: number;
}

/** A sink with a buffer: disposing it (LogTape's `reset()`) writes what is left. */
export type BatchedSink = Sink & Disposable & {
  /** Writes every line logged so far, now. */
  flush(): void;
};

const encoder = new TextEncoder();

/**
 * LogTape's mark (its `markSinkAsImmediate`, which the package does not
 * export) for a sink that is done with a record when it returns: LogTape
 * then hands it the record itself instead of first copying its properties.
 */
const IMMEDIATE_SINK = Symbol.for("LogTape.sinkSnapshotPolicy.immediate");

/**
 * Marks a sink that uses each record only before it returns (formats it at
 * once), so LogTape skips copying the record for it (~2 µs a call).
 *
 * @param sink A sink that keeps nothing of a record after returning.
 * @returns The same sink.
 */
export function markImmediate<T extends Sink>(sink: T): T {
  Object.defineProperty(sink, IMMEDIATE_SINK, { value: true });
  return sink;
}

/** Builds the sink; see the module documentation. */
export function batchedSink(
  formatter: TextFormatter,
  output: LogOutput,
  options: BatchedSinkOptions = {},
): BatchedSink {
  const interval = options.flushIntervalMs ?? 50;
  const batchBytes = options.batchBytes ?? 64 * 1024;
  let lines: string[] = [];
  let buffered = 0; // UTF-16 code units: close enough to bytes for a threshold.
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (lines.length === 0) return;
    const bytes = encoder.encode(lines.length === 1 ? lines[0] : lines.join(""));
    lines = [];
    buffered = 0;
    try {
      for (let at = 0; at < bytes.length;) at += output.writeSync(bytes.subarray(at));
    } catch {
      // A closed stderr must not take the relay down.
    }
  };
  // Last chances before the process ends: Deno.exit() or the end of the program (unload), and an
  // uncaught error (error, unhandledrejection; the process still ends as it would have).
  const lastChances = ["unload", "error", "unhandledrejection"] as const;
  for (const event of lastChances) globalThis.addEventListener(event, flush);

  const sink = ((record: LogRecord) => {
    const line = formatter(record);
    lines.push(line);
    buffered += line.length;
    if (buffered >= batchBytes) flush();
    else if (timer === undefined) {
      timer = setTimeout(flush, interval);
      Deno.unrefTimer(timer); // a buffered line never keeps the process alive: unload writes it
    }
  }) as BatchedSink;
  sink.flush = flush;
  markImmediate(sink); // the formatter turns the record into its line before the call returns
  sink[Symbol.dispose] = () => {
    flush();
    for (const event of lastChances) globalThis.removeEventListener(event, flush);
  };
  return sink;
}

/** Standard error as a {@linkcode LogOutput}. */
export const stderrOutput: LogOutput = {
  writeSync: (bytes) => Deno.stderr.writeSync(bytes),
};
