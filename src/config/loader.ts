/**
 * Reads, parses and validates the TOML configuration file. The only module
 * that touches the config file or the environment.
 *
 * @module
 */
import { parse as parseToml, TomlError } from "smol-toml";
import { type Config, configSchema } from "./schema.ts";

/** The default configuration path, relative to the working directory. */
export const DEFAULT_CONFIG_PATH = "config/relay.toml";

/** One problem found in a configuration file. */
export interface ConfigIssue {
  /** Dotted key, e.g. `limits.max_recipients`; empty for file-level problems. */
  key: string;
  /** What is wrong. */
  message: string;
}

/** Thrown when a configuration file cannot be used; lists every problem. */
export class ConfigError extends Error {
  /** The file that was read. */
  readonly file: string;
  /** Every problem found. */
  readonly issues: ConfigIssue[];

  /** Builds the error from the file name and the problems found in it. */
  constructor(file: string, issues: ConfigIssue[]) {
    super(
      `invalid configuration in ${file}:\n` +
        issues.map((i) => `  ${i.key || "(file)"}: ${i.message}`).join("\n"),
    );
    this.name = "ConfigError";
    this.file = file;
    this.issues = issues;
  }
}

/** Where the configuration came from, and what it says. */
export interface LoadedConfig {
  config: Config;
  /** The file read, or `null` when it did not exist and defaults were used. */
  path: string | null;
}

/**
 * Validates an already parsed TOML document.
 *
 * @param raw the parsed document
 * @param file the file name to put in errors
 */
export function parseConfig(raw: unknown, file = "(inline)"): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return keys.map((extra) => ({
      key: [...issue.path, ...(extra ? [extra] : [])].map(String).join("."),
      message: issue.code === "unrecognized_keys" ? "unknown key" : issue.message,
    }));
  }).flat();
  throw new ConfigError(file, issues);
}

/** Parses TOML text and validates it. */
export function parseConfigText(text: string, file = "(inline)"): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    const message = error instanceof TomlError ? error.message.split("\n")[0] : String(error);
    throw new ConfigError(file, [{ key: "", message: `TOML syntax: ${message}` }]);
  }
  return parseConfig(raw, file);
}

/**
 * Loads a configuration file. A missing file is fine when it is the default
 * path (embedded defaults apply); a missing explicit `--config` is an error.
 *
 * @param path the file to read; defaults to {@link DEFAULT_CONFIG_PATH}
 */
export async function loadConfig(path?: string): Promise<LoadedConfig> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && path === undefined) {
      return { config: parseConfig({}, file), path: null };
    }
    const reason = error instanceof Deno.errors.NotFound ? "file not found" : String(error);
    throw new ConfigError(file, [{ key: "", message: reason }]);
  }
  return { config: parseConfigText(text, file), path: file };
}
