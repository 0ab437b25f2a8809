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
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
  type TextFormatter,
} from "@logtape/logtape";
import { batchedSink, stderrOutput } from "./log_sink.ts";

/** A message with its values in place; strings bare (no quotes), others as JSON. */
function renderMessage(record: LogRecord): string {
  let out = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    out += i % 2 === 0 || typeof part === "string" ? String(part) : safeJson(part);
  }
  return out;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** One JSON object per line: time, level, logger, message, then the properties. */
export const jsonFormatter: TextFormatter = (record) =>
  safeJson({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level.toUpperCase(),
    logger: record.category.join("."),
    message: renderMessage(record),
    ...record.properties,
  }) + "\n";

/** Logging options (the `[log]` config section). */
export interface LogOptions {
  level: LogLevel;
  format: "auto" | "pretty" | "json";
}

/**
 * Configures logging for the process; call once at start. Writes to stderr
 * (stdout is for command output) in batches, off the hot path (see
 * `log_sink.ts`); {@linkcode teardownLogging} writes what is still buffered.
 */
export async function setupLogging(options: LogOptions): Promise<void> {
  const pretty = options.format === "pretty" ||
    (options.format === "auto" && Deno.stderr.isTerminal());
  await configure({
    reset: true,
    sinks: {
      stderr: batchedSink(
        pretty ? getAnsiColorFormatter({ timestamp: "time", value: "bare" }) : jsonFormatter,
        stderrOutput,
      ),
    },
    loggers: [
      { category: ["relay"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Writes every buffered line and removes the logging configuration (at exit). */
export async function teardownLogging(): Promise<void> {
  await reset();
}

/** A logger in the relay's category tree, e.g. `log("smtp")`. */
export function log(...category: string[]): Logger {
  return getLogger(["relay", ...category]);
}
