/**
 * The admin listener (`[admin]`, loopback by default) on `Deno.serve`:
 *
 * - `GET /metrics`: Prometheus text format; with `admin.token_file` it needs
 *   `Authorization: Bearer <token>` (401 otherwise);
 * - `GET /healthz/live`: 200 while the process answers;
 * - `GET /healthz/ready`: 200 when every readiness check passes, else 503
 *   naming each failing check. The health endpoints never need the token, so
 *   load balancers and orchestrators can probe them;
 * - `GET /limits/<address or account>`: the login lockouts in force, as JSON;
 *   `DELETE /limits/<address or account>` lifts them (what `relay limits
 *   show|clear` calls). Like `/metrics`, they need the token when one is set.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { listenError, parseListen } from "../config/listen.ts";
import type { AuditLog } from "../audit/mod.ts";
import type { RelayMetrics } from "./metrics.ts";

/** One readiness check: resolves `null` when fine, else the reason it is not. */
export interface ReadinessCheck {
  /** Short name shown in the answer (`spool`, `audit`, `listeners`). */
  name: string;
  /** Never rejects; a thrown error counts as not ready. */
  check(): Promise<string | null>;
}

/** Options for {@linkcode startAdminServer}. */
export interface AdminServerOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  /** Required as a bearer token for `/metrics`; `null`: open. */
  token: string | null;
  metrics: RelayMetrics;
  ready: ReadinessCheck[];
  /** Login lockouts to show and lift (`/limits/...`); absent: 404. */
  limits?: LimitsAdmin;
}

/** What the admin listener can do with login lockouts (a `Lockout` fits). */
export interface LimitsAdmin {
  /** The blocks in force for an address or account. */
  status(target: string): Promise<unknown>;
  /** Lifts them; resolves what was lifted. */
  clear(target: string): Promise<unknown>;
}

/** A running admin listener. */
export interface AdminServer {
  /** `http://host:port`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Smallest token accepted from `admin.token_file`. */
const MIN_TOKEN_LENGTH = 16;

/**
 * Reads the bearer token from `admin.token_file` (first line, trimmed).
 *
 * @throws {Error} naming the key when the file cannot be read or the token is too short
 */
export async function readAdminToken(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`admin.token_file: cannot read ${path}: ${(error as Error).message}`);
  }
  const token = text.split("\n")[0].trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new Error(
      `admin.token_file: ${path} must hold one token of at least ${MIN_TOKEN_LENGTH} characters`,
    );
  }
  return token;
}

/**
 * Ready while the spool can take a message: `probe` resolves with null when
 * a write committed (the spool writer alive, the database writable, its
 * WAL fsync'd, a file synced in the folder for large messages), otherwise
 * with why not (disk full, read-only, writer stopped).
 */
export function spoolWritableCheck(probe: () => Promise<string | null>): ReadinessCheck {
  return { name: "spool", check: probe };
}

/**
 * Ready unless the audit trail is down while `[audit] required` (then new mail
 * is refused); a trail down without `required` is reported but stays ready.
 */
export function auditCheck(audit: AuditLog, describe: string): ReadinessCheck {
  return {
    name: "audit",
    check() {
      if (audit.healthy || !audit.required) return Promise.resolve(null);
      return Promise.resolve(
        `audit trail ${describe} cannot be written and audit.required = true: new mail is refused`,
      );
    },
  };
}

function text(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...extra,
    },
  });
}

function sameToken(presented: string, expected: string): boolean {
  const a = new TextEncoder().encode(presented);
  const b = new TextEncoder().encode(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readiness(checks: ReadinessCheck[]): Promise<Response> {
  const results = await Promise.all(checks.map(async ({ name, check }) => {
    try {
      return { name, problem: await check() };
    } catch (error) {
      return { name, problem: `check failed: ${(error as Error).message}` };
    }
  }));
  const failing = results.filter((r) => r.problem !== null);
  const lines = results.map((r) => `${r.name}: ${r.problem ?? "ok"}`);
  return failing.length === 0 ? text(200, ["ready", ...lines].join("\n") + "\n") : text(
    503,
    [`not ready: ${failing.map((r) => r.problem).join("; ")}`, ...lines].join("\n") + "\n",
  );
}

/** Builds the admin request handler. */
export function adminHandler(
  options: Pick<AdminServerOptions, "token" | "metrics" | "ready" | "limits">,
): (request: Request) => Promise<Response> {
  return async (request) => {
    await request.body?.cancel();
    const { pathname } = new URL(request.url);
    const known = ["/metrics", "/healthz/live", "/healthz/ready"];
    const limits = pathname.startsWith("/limits/") && options.limits ? options.limits : null;
    if (!known.includes(pathname) && !limits) return text(404, "not found\n");
    const methods = limits ? ["GET", "HEAD", "DELETE"] : ["GET", "HEAD"];
    if (!methods.includes(request.method)) {
      return text(405, "method not allowed\n", { allow: methods.join(", ") });
    }
    if (pathname === "/healthz/live") return text(200, "live\n");
    if (pathname === "/healthz/ready") return await readiness(options.ready);
    if (options.token !== null) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
      if (!match || !sameToken(match[1], options.token)) {
        return text(401, "a bearer token is required (admin.token_file)\n", {
          "www-authenticate": 'Bearer realm="relay-admin"',
        });
      }
    }
    if (limits) {
      let target: string;
      try {
        target = decodeURIComponent(pathname.slice("/limits/".length));
      } catch {
        return text(400, "bad address or account\n");
      }
      if (target === "" || target.length > 320) return text(400, "bad address or account\n");
      const answer = request.method === "DELETE"
        ? await limits.clear(target)
        : await limits.status(target);
      return new Response(JSON.stringify(answer) + "\n", {
        headers: { "content-type": "application/json", "cache-control": "no-store" },
      });
    }
    return new Response(await options.metrics.text(), {
      headers: { "content-type": options.metrics.contentType, "cache-control": "no-store" },
    });
  };
}

/**
 * Starts the admin listener.
 *
 * @throws {Error} naming `admin.listen` and the address when it cannot bind
 */
export function startAdminServer(options: AdminServerOptions): AdminServer {
  const { hostname, port } = parseListen(options.listen);
  const abort = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname, port, signal: abort.signal, onListen: () => {} },
      adminHandler(options),
    );
  } catch (error) {
    throw listenError("admin.listen", options.listen, error);
  }
  const bound = server.addr;
  const host = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${bound.port}`,
    port: bound.port,
    close() {
      closing ??= (async () => {
        abort.abort();
        await server.finished;
      })();
      return closing;
    },
  };
}
