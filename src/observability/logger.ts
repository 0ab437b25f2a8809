/**
 * Logger setup: LogTape with one category per folder (`["relay","smtp"]`...),
 * JSON lines in production, coloured text on a TTY. Log records must never
 * carry passwords, tokens or AUTH lines; callers pass identities only.
 *
 * @module
 */
import {
  configure,
  getAnsiColorFormatter,
  getLogger,
  jsonLinesFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";

const encoder = new TextEncoder();

/** Writes each formatted record to stderr (all logs go to stderr; stdout is for command output). */
function stderrSink(formatter: TextFormatter): Sink {
  return (record: LogRecord) => {
    try {
      Deno.stderr.writeSync(encoder.encode(formatter(record)));
    } catch {
      // A closed stderr must not take the relay down.
    }
  };
}

/** Logging options (the `[log]` config section). */
export interface LogOptions {
  level: LogLevel;
  format: "auto" | "pretty" | "json";
}

/** Configures logging for the process; call once at start. Writes to stderr. */
export async function setupLogging(options: LogOptions): Promise<void> {
  const pretty = options.format === "pretty" ||
    (options.format === "auto" && Deno.stderr.isTerminal());
  await configure({
    reset: true,
    sinks: {
      stderr: stderrSink(
        pretty ? getAnsiColorFormatter({ timestamp: "time" }) : jsonLinesFormatter,
      ),
    },
    loggers: [
      { category: ["relay"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Flushes and removes the logging configuration (at exit). */
export async function teardownLogging(): Promise<void> {
  await reset();
}

/** A logger in the relay's category tree, e.g. `log("smtp")`. */
export function log(...category: string[]): Logger {
  return getLogger(["relay", ...category]);
}
