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
  const result = validate(raw);
  if ("config" in result) return result.config;
  throw new ConfigError(file, result.issues.map(({ key, message }) => ({ key, message })));
}

type Located = ConfigIssue & { path: PropertyKey[] };

function validate(raw: unknown): { config: Config } | { issues: Located[] } {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return { config: result.data };
  return {
    issues: result.error.issues.flatMap((issue) => {
      const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
      return keys.map((extra) => {
        const path = [...issue.path, ...(extra ? [extra] : [])];
        return {
          path,
          key: path.map(String).join("."),
          message: issue.code === "unrecognized_keys" ? "unknown key" : issue.message,
        };
      });
    }),
  };
}

/** Removes the value at `path` from a parsed TOML document; false when it is not there. */
function removeAt(document: unknown, path: PropertyKey[]): boolean {
  let node = document as Record<PropertyKey, unknown> | undefined;
  for (const step of path.slice(0, -1)) {
    node = node?.[step] as Record<PropertyKey, unknown> | undefined;
    if (node === null || typeof node !== "object") return false;
  }
  const last = path.at(-1);
  if (node === undefined || last === undefined || !(last in node)) return false;
  if (Array.isArray(node)) node.splice(Number(last), 1);
  else delete node[last];
  return true;
}

/**
 * Validates a parsed document like {@link parseConfig} but does not stop at
 * the bad keys: it returns every problem, and a configuration in which each
 * bad key has its default, so that later checks (files, URLs, names) can
 * still run and report theirs. `config` is null when no such configuration
 * could be made (a bad key whose removal does not help).
 */
export function parseConfigLenient(raw: unknown): { config: Config | null; issues: ConfigIssue[] } {
  const document = structuredClone(raw ?? {});
  let result = validate(document);
  const issues = "issues" in result ? result.issues : [];
  // Each pass drops what failed; a few passes reach a valid document or give up.
  for (let pass = 0; pass < 10 && "issues" in result; pass++) {
    const removed = result.issues.map((issue) => removeAt(document, issue.path));
    if (!removed.includes(true)) break;
    result = validate(document);
  }
  return {
    config: "config" in result ? result.config : null,
    issues: issues.map(({ key, message }) => ({ key, message })),
  };
}

/** Parses TOML text and validates it. */
export function parseConfigText(text: string, file = "(inline)"): Config {
  return parseConfig(parseTomlText(text, file), file);
}

/** Parses TOML text; a syntax error names its line and column. */
function parseTomlText(text: string, file: string): unknown {
  try {
    return parseToml(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // smol-toml: "Invalid TOML document: <reason>\n\n<excerpt>"; line and column are 1-based.
    const reason = error.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
    throw new ConfigError(file, [{
      key: "",
      message: `TOML syntax error at line ${error.line}, column ${error.column}: ${reason}`,
    }]);
  }
}

/**
 * Loads a configuration file. A missing file is fine when it is the default
 * path (embedded defaults apply); a missing explicit `--config` is an error.
 *
 * @param path the file to read; defaults to {@link DEFAULT_CONFIG_PATH}
 */
export async function loadConfig(path?: string): Promise<LoadedConfig> {
  const { raw, file, path: used } = await readDocument(path);
  return { config: parseConfig(raw, file), path: used };
}

/**
 * Loads a configuration file for `relay check`: like {@link loadConfig}, but
 * bad keys are returned (all of them) with a configuration in which they
 * have their defaults ({@link parseConfigLenient}). A TOML syntax error or a
 * missing explicit file still throws.
 *
 * @throws {ConfigError} when the file cannot be read or parsed as TOML
 */
export async function loadConfigLenient(
  path?: string,
): Promise<{ config: Config | null; issues: ConfigIssue[]; path: string | null; file: string }> {
  const { raw, file, path: used } = await readDocument(path);
  return { ...parseConfigLenient(raw), path: used, file };
}

/** Reads and parses the TOML document; a missing default file is an empty document. */
async function readDocument(
  path?: string,
): Promise<{ raw: unknown; file: string; path: string | null }> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && path === undefined) {
      return { raw: {}, file, path: null };
    }
    const reason = error instanceof Deno.errors.NotFound ? "file not found" : String(error);
    throw new ConfigError(file, [{ key: "", message: reason }]);
  }
  return { raw: parseTomlText(text, file), file, path: file };
}
