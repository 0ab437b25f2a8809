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

const LEVELS = new Map(
  ["trace", "debug", "info", "warning", "error", "fatal"].map((level) => [
    level,
    level.toUpperCase(),
  ]),
);
/** The `logger` field of each category array (LogTape keeps one array per logger). */
const loggerNames = new WeakMap<readonly string[], string>();
const isoTime = isoTimeFormatter();

/**
 * One JSON object per line: time, level, logger, message, then the properties.
 * The message is rendered from the record's template and properties (see
 * `message_template.ts`), and the line is what the object
 * `{ "@timestamp", level, logger, message, ...properties }` serializes to,
 * byte for byte: the fixed fields as text, then the engine's own
 * serialization of the properties. Properties that would change the order
 * or form of that object (a name among the four, `toJSON`, a name starting
 * with a digit, which objects put first), or that cannot be serialized, send
 * the record through that object instead.
 */
export const jsonFormatter: TextFormatter = (record) => {
  let logger = loggerNames.get(record.category);
  if (logger === undefined) {
    logger = JSON.stringify(record.category.join("."));
    loggerNames.set(record.category, logger);
  }
  const message = renderMessage(record);
  const properties = record.properties;
  if (
    typeof properties !== "object" || properties === null ||
    Object.getPrototypeOf(properties) !== Object.prototype
  ) {
    return objectLine(record, message);
  }
  for (const key in properties) {
    const first = key.charCodeAt(0);
    if ((first >= 48 && first <= 57) || OWN_PLACE.has(key)) return objectLine(record, message);
  }
  let fields: string;
  try {
    fields = JSON.stringify(properties);
  } catch {
    return objectLine(record, message);
  }
  return `{"@timestamp":"${isoTime(record.timestamp)}","level":"${
    LEVELS.get(record.level) ?? record.level.toUpperCase()
  }","logger":${logger},"message":${JSON.stringify(message)}${
    fields === "{}" ? "}" : "," + fields.slice(1)
  }\n`;
};

/** Names that the properties cannot simply follow the fixed fields with. */
const OWN_PLACE = new Set(["@timestamp", "level", "logger", "message", "toJSON"]);

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
