/**
 * Escaping of user-supplied values for LDAP filters (RFC 4515) and DNs
 * (RFC 4514), and the `{placeholder}` templates built from them. A login name
 * is attacker-controlled: it must never change a filter's or DN's structure.
 *
 * @module
 */

/**
 * Escapes a value for use inside an LDAP search filter (RFC 4515 section 3):
 * `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`.
 * Non-ASCII characters are kept (the filter is sent as UTF-8).
 *
 * @example
 * ```ts
 * escapeFilterValue("*)(uid=*"); // "\\2a\\29\\28uid=\\2a"
 * ```
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * Escapes a value for use as an attribute value in a DN (RFC 4514 section 2.4):
 * `"`, `+`, `,`, `;`, `<`, `>`, `\`, `=` anywhere, `#` and space at the start,
 * space at the end, and NUL.
 *
 * @example
 * ```ts
 * escapeDnValue("doe, john"); // "doe\\, john"
 * ```
 */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[\\",+;<>=\0]/g, (c) => c === "\0" ? "\\00" : `\\${c}`);
  if (out.startsWith("#") || out.startsWith(" ")) out = `\\${out}`;
  if (out.endsWith(" ") && !out.endsWith("\\ ")) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/**
 * Replaces `{name}` placeholders in `template` with `values[name]` passed
 * through `escape`. Values in `raw` are inserted as they are (they come from
 * configuration, not from the client). An unknown placeholder is an error, so
 * a typo in the configuration does not silently become a literal.
 */
export function fillTemplate(
  template: string,
  values: Readonly<Record<string, string>>,
  options: { escape: (value: string) => string; raw?: Readonly<Record<string, string>> },
): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    if (Object.hasOwn(values, name)) return options.escape(values[name]);
    if (options.raw && Object.hasOwn(options.raw, name)) return options.raw[name];
    throw new Error(`unknown placeholder ${whole} in LDAP template`);
  });
}

/**
 * The `dc=` chain of a domain without the leading `dc=`:
 * `company.com` → `company,dc=com`, for templates such as `dc={domain_dc}`.
 */
export function domainDcChain(domain: string): string {
  return domain.split(".").map(escapeDnValue).join(",dc=");
}
