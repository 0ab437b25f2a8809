/**
 * LogTape message templates (`"{id}: accepted from={from}"`) parsed once:
 * LogTape parses the template string on every call that reads a record's
 * `message`; the JSON formatter instead looks the template up here, split
 * into its literal texts and placeholder keys, and fills in the properties.
 *
 * Only templates whose every placeholder is a plain property name are
 * compiled; LogTape's other forms (`{*}`, `{user.name}`, `{list[0]}`,
 * `{ padded }`, `{}`) return `null`, and the caller reads the record's own
 * `message` instead, so the rendering is always LogTape's.
 *
 * @module
 */

/** A template split at its placeholders. */
export interface CompiledTemplate {
  /** The literal texts, with `{{`/`}}` unescaped: one more than {@linkcode keys}. */
  readonly texts: readonly string[];
  /** The property name of each placeholder, in order. */
  readonly keys: readonly string[];
}

/**
 * Splits a template as LogTape's `parseMessageTemplate` does.
 *
 * @param template The message template of a log call.
 * @returns Its parts, or `null` when a placeholder is more than a plain name.
 */
export function compileTemplate(template: string): CompiledTemplate | null {
  if (!template.includes("{")) return { texts: [template], keys: [] };
  const texts: string[] = [];
  const keys: string[] = [];
  let start = 0;
  for (let i = 0; i < template.length; i++) {
    const char = template[i];
    if (char === "{") {
      if (template[i + 1] === "{") {
        i++;
        continue;
      }
      const close = template.indexOf("}", i + 1);
      if (close === -1) continue;
      const key = template.slice(i + 1, close);
      if (!plainKey(key)) return null;
      texts.push(unescapeBraces(template.slice(start, i)));
      keys.push(key);
      i = close;
      start = close + 1;
    } else if (char === "}" && template[i + 1] === "}") i++;
  }
  texts.push(unescapeBraces(template.slice(start)));
  return { texts, keys };
}

/** A name LogTape looks up as `properties[key]` and nothing else. */
function plainKey(key: string): boolean {
  return key !== "" && key !== "*" && key.trim() === key && !key.includes(".") &&
    !key.includes("[") && !key.includes("?");
}

function unescapeBraces(text: string): string {
  return text.includes("{{") || text.includes("}}")
    ? text.replace(/{{/g, "{").replace(/}}/g, "}")
    : text;
}

const MAX_CACHED = 1000;
const cache = new Map<string, CompiledTemplate | null>();

/**
 * {@linkcode compileTemplate} with a cache by template string. Templates are
 * constants in the code, so the cache stays small; past 1000 distinct
 * templates the rest are compiled on each call rather than kept.
 *
 * @param template The message template of a log call.
 * @returns The same parts as `compileTemplate(template)`.
 */
export function cachedTemplate(template: string): CompiledTemplate | null {
  let compiled = cache.get(template);
  if (compiled === undefined && !cache.has(template)) {
    compiled = compileTemplate(template);
    if (cache.size < MAX_CACHED) cache.set(template, compiled);
  }
  return compiled ?? null;
}
