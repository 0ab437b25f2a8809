/**
 * HTTP helpers for the OAuth endpoints: bounded body reading, form parsing
 * that refuses repeated parameters, RFC 6749 5.2 error responses, and
 * client authentication (client_secret_basic, client_secret_post, none).
 *
 * @module
 */
import type { ClientRegistry, OAuthClient } from "./clients.ts";
import type { SecretVerifier } from "./client_secret.ts";

/** Thrown for a request the server refuses before any endpoint logic. */
export class HttpError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** Builds the error. */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** Reads a request body, refusing more than `limit` bytes (413). */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) {
    await request.body?.cancel();
    throw new HttpError(413, "request body too large");
  }
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw new HttpError(413, "request body too large");
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

/** A parsed form: one value per name; repeated names are recorded. */
export interface Form {
  get(name: string): string | null;
  /** Names that occurred more than once (RFC 6749 3.1, 3.2: an error). */
  readonly repeated: string[];
}

/** Builds a {@link Form} from URL-encoded parameters. */
export function toForm(params: URLSearchParams): Form {
  const values = new Map<string, string>();
  const repeated = new Set<string>();
  for (const [name, value] of params) {
    if (values.has(name)) repeated.add(name);
    values.set(name, value);
  }
  return {
    get: (name) => values.get(name) ?? null,
    repeated: [...repeated],
  };
}

/** Reads an `application/x-www-form-urlencoded` body (415 otherwise). */
export async function readForm(request: Request, limit: number): Promise<Form> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
    await request.body?.cancel();
    throw new HttpError(415, "expected application/x-www-form-urlencoded");
  }
  const body = await readBody(request, limit);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    throw new HttpError(400, "request body is not UTF-8");
  }
  return toForm(new URLSearchParams(text));
}

/** Headers of every JSON answer that may carry a token or a secret. */
export function noStoreHeaders(extra: Record<string, string> = {}): Headers {
  return new Headers({
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    pragma: "no-cache",
    "x-content-type-options": "nosniff",
    ...extra,
  });
}

/** A JSON response with `no-store`. */
export function json(body: unknown, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: noStoreHeaders(extra) });
}

/** An RFC 6749 5.2 error response. */
export function oauthError(
  error: string,
  description: string,
  status = 400,
  extra: Record<string, string> = {},
): Response {
  return json({ error, error_description: description }, status, extra);
}

/** The outcome of client authentication. */
export type ClientAuthResult =
  | { ok: true; client: OAuthClient; method: "client_secret_basic" | "client_secret_post" | "none" }
  | { ok: false; response: Response };

/** Options for {@link authenticateClient}. */
export interface ClientAuthOptions {
  registry: ClientRegistry;
  verifySecret: SecretVerifier;
  /** Whether a public client (client_id only) is acceptable here. */
  allowPublic: boolean;
}

const INVALID_CLIENT = (basic: boolean) =>
  oauthError(
    "invalid_client",
    "client authentication failed",
    401,
    basic ? { "www-authenticate": 'Basic realm="oauth", charset="UTF-8"' } : {},
  );

/**
 * Authenticates the client of a token, introspection or revocation request.
 * Confidential clients must authenticate with exactly one method; public
 * clients send only `client_id` (and only where `allowPublic`). A public
 * client that also has a secret (the built-in one) may do either; a wrong
 * secret is `invalid_client` all the same.
 */
export async function authenticateClient(
  request: Request,
  form: Form,
  options: ClientAuthOptions,
): Promise<ClientAuthResult> {
  const header = request.headers.get("authorization");
  const basic = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (header && !basic) {
    return {
      ok: false,
      response: oauthError("invalid_client", "unsupported Authorization scheme", 401, {
        "www-authenticate": 'Basic realm="oauth"',
      }),
    };
  }
  const postSecret = form.get("client_secret") || null;
  const formId = form.get("client_id");
  if (basic && postSecret) {
    return {
      ok: false,
      response: oauthError("invalid_request", "use one client authentication method"),
    };
  }
  if (basic) {
    let id: string;
    let secret: string;
    try {
      const decoded = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.fromBase64(basic[1]),
      );
      const colon = decoded.indexOf(":");
      if (colon < 0) throw new Error("no colon");
      // RFC 6749 2.3.1: both parts are form-urlencoded.
      id = decodeURIComponent(decoded.slice(0, colon).replaceAll("+", " "));
      secret = decodeURIComponent(decoded.slice(colon + 1).replaceAll("+", " "));
    } catch {
      return { ok: false, response: INVALID_CLIENT(true) };
    }
    if (formId !== null && formId !== id) {
      return { ok: false, response: oauthError("invalid_request", "client_id mismatch") };
    }
    const client = await options.registry.get(id);
    if (!client?.secretHash || !await options.verifySecret(secret, client.secretHash)) {
      return { ok: false, response: INVALID_CLIENT(true) };
    }
    return { ok: true, client, method: "client_secret_basic" };
  }
  if (!formId) return { ok: false, response: INVALID_CLIENT(false) };
  const client = await options.registry.get(formId);
  if (!client) return { ok: false, response: INVALID_CLIENT(false) };
  if (postSecret) {
    if (!client.secretHash || !await options.verifySecret(postSecret, client.secretHash)) {
      return { ok: false, response: INVALID_CLIENT(false) };
    }
    return { ok: true, client, method: "client_secret_post" };
  }
  if (!client.public || !options.allowPublic) {
    return { ok: false, response: INVALID_CLIENT(false) };
  }
  return { ok: true, client, method: "none" };
}
