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
import { isoTimeFormatter } from "./iso_time.ts";
import { cachedTemplate, type CompiledTemplate } from "./message_template.ts";

/** A message with its values in place; strings bare (no quotes), others as JSON. */
function renderMessage(record: LogRecord): string {
  const template = typeof record.rawMessage === "string" ? cachedTemplate(record.rawMessage) : null;
  if (template !== null) return renderTemplate(template, record.properties);
  let out = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    out += i % 2 === 0 || typeof part === "string" ? String(part) : safeJson(part);
  }
  return out;
}

/** What LogTape's message would render to, without parsing the template again. */
function renderTemplate(template: CompiledTemplate, properties: Record<string, unknown>): string {
  const { texts, keys } = template;
  let out = texts[0];
  for (let i = 0; i < keys.length; i++) {
    const value = properties[keys[i]];
    out += (typeof value === "string" ? value : safeJson(value)) + texts[i + 1];
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

const LEVELS: Record<string, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
  fatal: "FATAL",
};
/** The `logger` field of each category array (LogTape keeps one array per logger). */
const loggerNames = new WeakMap<readonly string[], string>();
const isoTime = isoTimeFormatter();

/**
 * One JSON object per line: time, level, logger, message, then the properties.
 * The message is rendered from the record's template and properties (see
 * `message_template.ts`), and the line is built as the object
 * `{ "@timestamp", level, logger, message, ...properties }` would serialize,
 * byte for byte; a property that could change that order or value (a name
 * among those four or starting with a digit, a custom `toJSON`, a value that
 * cannot be serialized) sends the record through that object instead.
 */
export const jsonFormatter: TextFormatter = (record) => {
  let logger = loggerNames.get(record.category);
  if (logger === undefined) {
    logger = JSON.stringify(record.category.join("."));
    loggerNames.set(record.category, logger);
  }
  const head = `{"@timestamp":"${isoTime(record.timestamp)}","level":"${
    LEVELS[record.level] ?? record.level.toUpperCase()
  }","logger":${logger},"message":`;
  const message = renderMessage(record);
  const properties = record.properties;
  let line = head + JSON.stringify(message);
  try {
    for (const key in properties) {
      if (!Object.hasOwn(properties, key)) continue;
      const field = fieldPrefix(key);
      if (field === null) return objectLine(record, message);
      const value = properties[key];
      if (typeof value === "string") line += field + JSON.stringify(value);
      else if (typeof value === "number" || typeof value === "boolean" || value === null) {
        line += field + JSON.stringify(value);
      } else if (value === undefined || typeof value === "function" || typeof value === "symbol") {
        continue; // JSON.stringify leaves these fields out
      } else if (
        typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function" &&
        !(value instanceof Date)
      ) {
        return objectLine(record, message); // toJSON is called with the field's name there
      } else line += field + JSON.stringify(value);
    }
  } catch {
    return objectLine(record, message);
  }
  return line + "}\n";
};

/** The line as the plain object serializes (and as it did before the fast path). */
function objectLine(record: LogRecord, message: string): string {
  return safeJson({
    "@timestamp": isoTime(record.timestamp),
    level: record.level.toUpperCase(),
    logger: record.category.join("."),
    message,
    ...record.properties,
  }) + "\n";
}

const FIXED_FIELDS = new Set(["@timestamp", "level", "logger", "message"]);
const MAX_FIELDS = 1000;
const fieldPrefixes = new Map<string, string>();

/** `,"key":` for a property, or `null` when it would not land after the fixed fields. */
function fieldPrefix(key: string): string | null {
  let prefix = fieldPrefixes.get(key);
  if (prefix !== undefined) return prefix;
  // Integer-like names go first in an object; the fixed names would keep their place.
  const first = key.charCodeAt(0);
  if (FIXED_FIELDS.has(key) || (first >= 48 && first <= 57)) return null;
  prefix = `,${JSON.stringify(key)}:`;
  if (fieldPrefixes.size < MAX_FIELDS) fieldPrefixes.set(key, prefix);
  return prefix;
}

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
