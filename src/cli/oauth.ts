/**
 * `relay oauth ...`: get a token as a native client would, and manage the
 * signing keys.
 *
 * - `oauth login --email E [--client-id ID] [--no-browser] [--json]`:
 *   discovery, a loopback redirect listener on 127.0.0.1, PKCE S256, the
 *   authorization URL (opened in a browser unless `--no-browser`), the code
 *   exchange; prints the access token (everything as JSON with `--json`).
 * - `oauth keys rotate`: makes a new signing key now (old keys stay published
 *   until their tokens expire); `oauth keys list` prints the key ids. With
 *   `[state] backend = "redis"` the key set shared in Redis, else `keys_file`.
 * - `oauth hash-secret`: reads a client secret on stdin, prints its
 *   `{SSHA512}` hash for `[[oauth.clients]] secret_hash`.
 *
 * @module
 */
import { decodeJwt } from "jose";
import { parseArgs } from "node:util";
import { type OAuthConfig, oauthIssuer } from "../config/oauth_schema.ts";
import {
  hashSecretSsha512,
  randomToken,
  RedisKeySetStorage,
  s256,
  SigningKeys,
  THUNDERBIRD_CLIENT_ID,
} from "../oauth/mod.ts";
import { readStateFiles, type StateConfig } from "../config/state_schema.ts";
import type { RedisConnection } from "../state/mod.ts";

/** Where the command writes and how it reaches the world; injectable for tests. */
export interface OAuthCommandIo {
  /** Results (the token). */
  stdout(text: string): void;
  /** Messages for the person (the URL to open, errors). */
  stderr(text: string): void;
  /** Opens a URL in the user's browser; default `xdg-open` / `open`. */
  openBrowser(url: string): Promise<void>;
  /** Reads stdin to the end (hash-secret). */
  readStdin(): Promise<string>;
  /** How long to wait for the browser to come back (ms, default 5 minutes). */
  timeoutMs: number;
}

const USAGE = `usage:
  relay oauth login --email EMAIL [--client-id ID] [--scope SCOPE] [--issuer URL]
                    [--no-browser] [--json]
  relay oauth keys rotate | list
  relay oauth hash-secret < secret.txt`;

async function defaultOpenBrowser(url: string): Promise<void> {
  const command = Deno.build.os === "darwin"
    ? "open"
    : Deno.build.os === "windows"
    ? "explorer"
    : "xdg-open";
  const child = new Deno.Command(command, { args: [url], stdout: "null", stderr: "null" }).spawn();
  await child.status;
}

async function readAllStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

function defaults(io: Partial<OAuthCommandIo>): OAuthCommandIo {
  return {
    stdout: (text) => console.log(text),
    stderr: (text) => console.error(text),
    openBrowser: defaultOpenBrowser,
    readStdin: readAllStdin,
    timeoutMs: 300_000,
    ...io,
  };
}

/**
 * Runs `relay oauth <args>`; resolves with the process exit code.
 *
 * @param args the arguments after `oauth`
 * @param config the configuration (its `[oauth]` and `[state]` sections are read)
 * @param io output and side effects, injectable for tests
 */
export async function runOAuthCommand(
  args: string[],
  config: { oauth: OAuthConfig; state?: StateConfig },
  io: Partial<OAuthCommandIo> = {},
): Promise<number> {
  const out = defaults(io);
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "login":
        return await login(rest, config.oauth, out);
      case "keys":
        return await keys(rest, config.oauth, config.state, out);
      case "hash-secret": {
        const secret = (await out.readStdin()).replace(/\r?\n$/, "");
        if (secret === "") {
          out.stderr("hash-secret: no secret on stdin");
          return 2;
        }
        out.stdout(hashSecretSsha512(secret));
        return 0;
      }
      default:
        out.stderr(USAGE);
        return command === undefined || command === "help" || command === "--help" ? 0 : 2;
    }
  } catch (error) {
    out.stderr(`oauth ${command}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

async function keys(
  args: string[],
  config: OAuthConfig,
  state: StateConfig | undefined,
  io: OAuthCommandIo,
): Promise<number> {
  if (args[0] !== "rotate" && args[0] !== "list") {
    io.stderr(USAGE);
    return 2;
  }
  // With Redis the key set every node shares lives there.
  let redis: RedisConnection | null = null;
  if (state?.backend === "redis") {
    const files = await readStateFiles(state);
    const { RedisConnection } = await import("../state/redis_client.ts");
    redis = RedisConnection.open({
      url: state.url,
      password: files.password,
      caPem: files.caPem,
      prefix: state.key_prefix,
      commandTimeoutMs: state.timeout_ms,
    });
  }
  try {
    if (redis && !await redis.waitReady(5 * state!.timeout_ms)) {
      throw new Error(`Redis at ${new URL(state!.url).host} is not reachable`);
    }
    const options = {
      file: config.keys_file,
      rotateDays: config.rotate_days,
      accessTokenTtlSeconds: config.access_token_ttl_seconds,
      ...(redis ? { storage: new RedisKeySetStorage(redis) } : {}),
    };
    const where = redis ? `Redis (${new URL(state!.url).host})` : config.keys_file;
    if (args[0] === "rotate") {
      const set = await SigningKeys.open(options);
      const kid = await set.rotate();
      io.stdout(kid);
      io.stderr(
        `new signing key ${kid} in ${where}; earlier keys stay published until their tokens expire`,
      );
      return 0;
    }
    const set = await SigningKeys.open({ ...options, readOnly: true });
    for (const kid of set.kids()) io.stdout(kid);
    return 0;
  } finally {
    await redis?.close();
  }
}

interface Metadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  authorization_response_iss_parameter_supported?: boolean;
}

async function discover(issuer: string): Promise<Metadata> {
  const url = `${issuer}/.well-known/oauth-authorization-server`;
  const response = await fetch(url, { headers: { accept: "application/json" } });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`discovery at ${url} answered HTTP ${response.status}`);
  }
  const doc = await response.json() as Metadata;
  if (doc.issuer !== issuer) {
    throw new Error(`discovery names issuer ${doc.issuer}, expected ${issuer}`);
  }
  return doc;
}

const CALLBACK_PAGE = (title: string, text: string) =>
  new Response(
    `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title}</title>` +
      `<h1>${title}</h1><p>${text}</p></html>`,
    {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": "default-src 'none'",
        "cache-control": "no-store",
      },
    },
  );

async function login(args: string[], config: OAuthConfig, io: OAuthCommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      email: { type: "string" },
      "client-id": { type: "string", default: THUNDERBIRD_CLIENT_ID },
      scope: { type: "string", default: "smtp.send" },
      issuer: { type: "string" },
      "no-browser": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (!values.email) {
    io.stderr("oauth login: --email is required\n" + USAGE);
    return 2;
  }
  const issuer = (values.issuer ?? oauthIssuer(config)).replace(/\/+$/, "");
  const metadata = await discover(issuer);

  const verifier = randomToken(32);
  const state = randomToken(16);
  const { promise: callback, resolve } = Promise.withResolvers<URL>();
  const listener = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/callback") return new Response("not found", { status: 404 });
    if (url.searchParams.get("state") !== state) {
      return CALLBACK_PAGE("Unexpected request", "This does not answer the sign-in in progress.");
    }
    resolve(url);
    return url.searchParams.has("code")
      ? CALLBACK_PAGE("Signed in", "You can close this window and return to the terminal.")
      : CALLBACK_PAGE("Sign-in failed", "Return to the terminal for details.");
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const redirectUri = `http://127.0.0.1:${listener.addr.port}/callback`;
    const authorize = new URL(metadata.authorization_endpoint);
    for (
      const [name, value] of Object.entries({
        response_type: "code",
        client_id: values["client-id"],
        redirect_uri: redirectUri,
        scope: values.scope,
        state,
        code_challenge: s256(verifier),
        code_challenge_method: "S256",
        login_hint: values.email,
      })
    ) authorize.searchParams.set(name, value);

    io.stderr(
      `Open this address in a browser and sign in as ${values.email}:\n\n  ${authorize.href}\n`,
    );
    if (!values["no-browser"]) {
      await io.openBrowser(authorize.href).catch(() => {
        io.stderr("(could not start a browser; open the address yourself)");
      });
    }
    const url = await Promise.race([
      callback,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("timed out waiting for the browser to come back")),
          io.timeoutMs,
        );
      }),
    ]);
    const error = url.searchParams.get("error");
    if (error) {
      io.stderr(`sign-in refused: ${error}: ${url.searchParams.get("error_description") ?? ""}`);
      return 1;
    }
    const iss = url.searchParams.get("iss");
    if (iss !== null ? iss !== issuer : metadata.authorization_response_iss_parameter_supported) {
      throw new Error("the redirect came from another issuer (RFC 9207 iss mismatch)");
    }
    const code = url.searchParams.get("code");
    if (!code) throw new Error("the redirect carried no code");

    const response = await fetch(metadata.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: values["client-id"],
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
      }),
    });
    const tokens = await response.json();
    if (!response.ok) {
      io.stderr(`token request refused: ${tokens.error}: ${tokens.error_description ?? ""}`);
      return 1;
    }
    const email = emailOf(tokens.access_token);
    if (email && email.toLowerCase() !== values.email.toLowerCase()) {
      io.stderr(`note: signed in as ${email}, not ${values.email}`);
    }
    io.stdout(
      values.json
        ? JSON.stringify({
          access_token: tokens.access_token,
          refresh_token: tokens.refresh_token,
          token_type: tokens.token_type,
          expires_in: tokens.expires_in,
          scope: tokens.scope,
        })
        : tokens.access_token,
    );
    return 0;
  } finally {
    clearTimeout(timer);
    await listener.shutdown();
  }
}

function emailOf(token: string): string | null {
  try {
    const email = decodeJwt(token).email;
    return typeof email === "string" ? email : null;
  } catch {
    return null;
  }
}
