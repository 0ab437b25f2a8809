/**
 * Backend URLs (`relay.url` and route URLs):
 *
 * | URL                                        | transport                          |
 * |--------------------------------------------|------------------------------------|
 * | `smtp://mail.example.net:587?tls=starttls` | STARTTLS, required (the default)   |
 * | `smtps://mail.example.net:465`             | implicit TLS                       |
 * | `smtp://127.0.0.1:25?tls=none`             | plain text (trusted local backend) |
 * | `file:data/outbox`                         | files, for development             |
 *
 * Without a port, `smtp:` means 25 and `smtps:` 465. Credentials do not go
 * in the URL (it is logged): use `relay.username`/`relay.password`.
 *
 * @module
 */
import type { SmtpSecurity } from "./smtp_client.ts";

/** A parsed backend URL. */
export type RelayTarget =
  | { kind: "file"; dir: string }
  | {
    kind: "smtp";
    host: string;
    port: number;
    security: SmtpSecurity;
    /** The URL as written, safe to log. */
    display: string;
  };

/** A backend URL that cannot be used; the message says why. */
export class RelayUrlError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "RelayUrlError";
  }
}

/**
 * Parses a backend URL.
 *
 * @example
 * ```ts
 * import { parseRelayUrl } from "./relay_url.ts";
 *
 * const target = parseRelayUrl("smtp://mail.example.net:587?tls=starttls");
 * console.log(target); // { kind: "smtp", host: "mail.example.net", port: 587, security: "starttls", ... }
 * ```
 *
 * @throws {RelayUrlError} an unknown scheme or `tls=` value, credentials in the URL, a bad port
 */
export function parseRelayUrl(text: string): RelayTarget {
  if (text.startsWith("file:")) {
    const dir = text.slice("file:".length).replace(/^\/\/(?=\/)/, "");
    if (dir === "") throw new RelayUrlError("file: URL needs a directory, e.g. file:data/outbox");
    return { kind: "file", dir };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RelayUrlError(`not a URL: ${JSON.stringify(text)}`);
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme !== "smtp" && scheme !== "smtps") {
    throw new RelayUrlError(`unsupported scheme ${scheme}: (use smtp:, smtps: or file:)`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new RelayUrlError("credentials do not belong in the URL: use username and password");
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new RelayUrlError("the URL names no host");
  if (url.pathname !== "" && url.pathname !== "/") {
    throw new RelayUrlError(`unexpected path ${JSON.stringify(url.pathname)}`);
  }
  const port = url.port === "" ? (scheme === "smtps" ? 465 : 25) : Number(url.port);
  const params = [...url.searchParams.keys()];
  const unknown = params.find((p) => p !== "tls");
  if (unknown !== undefined) throw new RelayUrlError(`unknown URL parameter ${unknown}`);
  const tls = url.searchParams.get("tls")?.toLowerCase();
  let security: SmtpSecurity;
  if (scheme === "smtps") {
    if (tls !== undefined && tls !== "implicit") {
      throw new RelayUrlError("smtps: is implicit TLS; tls= can only be implicit");
    }
    security = "implicit";
  } else if (tls === undefined || tls === "starttls") {
    security = "starttls";
  } else if (tls === "none") {
    security = "none";
  } else if (tls === "implicit") {
    security = "implicit";
  } else {
    throw new RelayUrlError(`tls=${tls}: expected starttls, none or implicit`);
  }
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const suffix = scheme === "smtp" ? `?tls=${security}` : "";
  return {
    kind: "smtp",
    host,
    port,
    security,
    display: `${scheme}://${shownHost}:${port}${suffix}`,
  };
}
