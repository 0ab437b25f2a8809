/**
 * Load loops that know nothing about SMTP: run N tasks with a fixed number
 * in flight, or run them over long-lived sessions. Each task is timed on its
 * own; failures are counted by kind, not thrown. The submission bench and the
 * delivery-path bench both drive their protocol through these.
 *
 * @module
 */

/** What one load run measured. */
export interface LoadResult {
  /** Tasks that completed without error. */
  ok: number;
  /** Tasks that threw. */
  failed: number;
  /** Failure kinds (error name and message, shortened) → count. */
  errors: Map<string, number>;
  /** Duration of each successful task, in milliseconds (in completion order). */
  latenciesMs: number[];
  /** Wall time of the whole run, in milliseconds. */
  wallMs: number;
}

/** Options for {@linkcode runTasks}. */
export interface RunTasksOptions {
  /** How many tasks to run in total. */
  count: number;
  /** How many run at the same time (1 = one after another). */
  concurrency: number;
  /** One task; `index` counts from 0. Its duration is its latency. */
  task: (index: number) => Promise<void>;
  /** Stop starting new tasks after this many failures (default: count, i.e. never). */
  maxFailures?: number;
}

/** Runs `count` independent tasks, `concurrency` at a time. */
export async function runTasks(options: RunTasksOptions): Promise<LoadResult> {
  const result = emptyResult();
  const maxFailures = options.maxFailures ?? options.count;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < options.count && result.failed < maxFailures) {
      const index = next++;
      const t0 = performance.now();
      try {
        await options.task(index);
        result.latenciesMs.push(performance.now() - t0);
        result.ok++;
      } catch (error) {
        recordFailure(result, error);
      }
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency, options.count));
  await Promise.all(Array.from({ length: workers }, worker));
  result.wallMs = performance.now() - started;
  return result;
}

/** Options for {@linkcode runPooled}. */
export interface RunPooledOptions<S> {
  /** How many tasks to run in total, spread over the sessions. */
  count: number;
  /** How many sessions (connections) run side by side. */
  sessions: number;
  /** Opens a session (not timed). */
  open: () => Promise<S>;
  /** One task on a session; timed. A throw discards the session and opens another. */
  task: (session: S, index: number, taskOnSession: number) => Promise<void>;
  /** Closes a session (not timed); must not throw. */
  close: (session: S, broken: boolean) => Promise<void>;
  /** Stop after this many failures (default: count). */
  maxFailures?: number;
}

/**
 * Runs `count` tasks over `sessions` long-lived sessions: each session takes
 * the next task as soon as its previous one is done.
 */
export async function runPooled<S>(options: RunPooledOptions<S>): Promise<LoadResult> {
  const result = emptyResult();
  const maxFailures = options.maxFailures ?? options.count;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    let session: S | undefined;
    let onSession = 0;
    try {
      while (next < options.count && result.failed < maxFailures) {
        if (session === undefined) {
          try {
            session = await options.open();
            onSession = 0;
          } catch (error) {
            next++; // The task this session was opened for is lost.
            recordFailure(result, error);
            continue;
          }
        }
        const index = next++;
        const t0 = performance.now();
        try {
          await options.task(session, index, onSession++);
          result.latenciesMs.push(performance.now() - t0);
          result.ok++;
        } catch (error) {
          recordFailure(result, error);
          const broken = session;
          session = undefined;
          await options.close(broken, true);
        }
      }
    } finally {
      if (session !== undefined) await options.close(session, false);
    }
  };
  const workers = Math.max(1, Math.min(options.sessions, options.count));
  await Promise.all(Array.from({ length: workers }, worker));
  result.wallMs = performance.now() - started;
  return result;
}

/**
 * The value at percentile `p` (0-100) by the nearest-rank method; NaN for no values.
 *
 * @param values the samples (not modified)
 * @param p the percentile, e.g. 50 or 99
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * Aligns a text table: a header, a rule, the rows; the first `leftColumns`
 * columns flush left, numbers flush right.
 */
export function alignTable(header: string[], rows: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** A number with `digits` decimals, or `-` when there is none. */
export function fixedOrDash(n: number | null, digits: number): string {
  return n === null || Number.isNaN(n) ? "-" : n.toFixed(digits);
}

function emptyResult(): LoadResult {
  return { ok: 0, failed: 0, errors: new Map(), latenciesMs: [], wallMs: 0 };
}

function recordFailure(result: LoadResult, error: unknown): void {
  result.failed++;
  const kind = error instanceof Error
    ? `${error.name}: ${error.message.split("\n")[0].slice(0, 120)}`
    : String(error).slice(0, 120);
  result.errors.set(kind, (result.errors.get(kind) ?? 0) + 1);
}
