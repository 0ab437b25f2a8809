/**
 * Starts a real relay in-process for a test: temp directory, free ports,
 * generated certificates, cheap argon2 parameters, a users file, the file
 * outbox. Everything is torn down by `close()`.
 *
 * @module
 */
import { normalizeDomain } from "../../src/mail/mod.ts";
import { join } from "node:path";
import { MemoryAuditLog } from "../../src/audit/mod.ts";
import { hashPassword } from "../../src/auth/password_hash.ts";
import { type Config, parseConfig } from "../../src/config/mod.ts";
import { type Relay, startRelay, type StartRelayOptions } from "../../src/relay.ts";
import { SmtpClient } from "../../src/delivery/smtp_client.ts";
import { untilWindowRoom } from "./until.ts";

/** Cheap argon2id parameters for tests (production default is m=19456, t=2). */
export const TEST_ARGON2 = { memory_kib: 64, iterations: 1, parallelism: 1 };

/** A test user. */
export interface TestUser {
  email: string;
  password: string;
}

/** Default users: two domains. */
export const USERS: TestUser[] = [
  { email: "alice@example.com", password: "alice-secret-1" },
  { email: "bob@company.com", password: "bob-secret-2" },
];

/** A relay running for a test. */
export interface TestRelay {
  relay: Relay;
  config: Config;
  dir: string;
  /** PEM of the development CA that signed the server certificate. */
  caPem: string;
  smtpsPort: number;
  submissionPort: number;
  audit: MemoryAuditLog;
  outbox: string;
  users: TestUser[];
  /** Lists `.eml` files in the outbox. */
  outboxFiles(): Promise<string[]>;
  /** Waits until `count` messages are in the outbox (or throws after `timeoutMs`). */
  waitForOutbox(count: number, timeoutMs?: number): Promise<string[]>;
  close(): Promise<void>;
}

/** Options for {@link startTestRelay}. */
export interface TestRelayOptions {
  /** TOML-shaped overrides merged over the test defaults (one level deep per section). */
  config?: Record<string, Record<string, unknown>>;
  users?: TestUser[];
  start?: StartRelayOptions;
}

/** Starts a relay with test defaults. */
export async function startTestRelay(options: TestRelayOptions = {}): Promise<TestRelay> {
  const dir = await Deno.makeTempDir({ prefix: "relay-test-" });
  const users = options.users ?? USERS;
  const usersDir = join(dir, "users");
  await Deno.mkdir(usersDir);
  const byDomain = new Map<string, string[]>();
  for (const user of users) {
    const raw = user.email.split("@")[1];
    // The store looks files up by the canonical (punycode) domain.
    const domain = normalizeDomain(raw) ?? raw;
    const hash = await hashPassword(user.password, {
      memoryKib: TEST_ARGON2.memory_kib,
      iterations: TEST_ARGON2.iterations,
      parallelism: TEST_ARGON2.parallelism,
    });
    byDomain.set(domain, [...(byDomain.get(domain) ?? []), `${user.email}:${hash}`]);
  }
  for (const [domain, lines] of byDomain) {
    await Deno.writeTextFile(join(usersDir, `${domain}.txt`), lines.join("\n") + "\n");
  }
  const outbox = join(dir, "outbox");
  const base: Record<string, Record<string, unknown>> = {
    // Sessions on the main thread; tests of server.workers set it themselves.
    server: { hostname: "relay.test", shutdown_grace_seconds: 2, workers: 1 },
    smtps: { listen: "127.0.0.1:0" },
    submission: { listen: "127.0.0.1:0" },
    tls: { cert: join(dir, "certs", "server.crt"), key: join(dir, "certs", "server.key") },
    auth: {
      workers: 1,
      argon2: TEST_ARGON2,
      file: { users: join(dir, "users.txt"), users_dir: usersDir },
    },
    spool: { dir: join(dir, "spool") },
    relay: { url: `file:${outbox}` },
    audit: { file: join(dir, "audit.jsonl") },
    oauth: { enabled: false, keys_file: join(dir, "oauth-keys.json") },
    // Protocol tests fail AUTH on purpose many times; rate-limit tests turn this on.
    rate_limit: { enabled: false },
    limits: { error_delay_ms: 0 },
    log: { level: "warning", format: "json" },
    admin: { listen: "127.0.0.1:0" },
    dkim: { dir: join(dir, "dkim") },
  };
  for (const [section, values] of Object.entries(options.config ?? {})) {
    base[section] = { ...(base[section] ?? {}), ...values };
  }
  const audit = new MemoryAuditLog();
  let config: Config;
  let relay: Relay;
  try {
    config = parseConfig(base, "test");
    relay = await startRelay(config, { audit, ...options.start });
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const caPem = await Deno.readTextFile(join(dir, "certs", "ca.crt"));
  if (config.rate_limit.enabled || config.rate_limit.connections_per_ip_per_minute > 0) {
    // Per-minute limits count in sliding windows on the wall clock (or Redis's):
    // a test's burst that straddled a minute boundary would count a little less
    // than whole and miss its limit. Tests start with room in the minute.
    await untilWindowRoom(60_000, 20_000);
  }
  const outboxFiles = async () => {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(outbox)) {
        if (entry.name.endsWith(".eml")) names.push(join(outbox, entry.name));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return names.sort();
  };
  const smtpsPort = config.smtps.enabled ? relay.port("smtps") : 0;
  const submissionPort = config.submission.enabled ? relay.port("submission") : 0;
  return {
    relay,
    config,
    dir,
    caPem,
    smtpsPort,
    submissionPort,
    audit,
    outbox,
    users,
    outboxFiles,
    async waitForOutbox(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const files = await outboxFiles();
        if (files.length >= count) return files;
        if (Date.now() > deadline) {
          throw new Error(`outbox has ${files.length} messages, expected ${count}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      await relay.close(500);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * {@link startTestRelay} with the embedded OAuth2 server on a free port (its
 * signing keys in a temporary folder removed at close); `config` is merged in.
 */
export async function startOAuthTestRelay(
  config: Record<string, Record<string, unknown>> = {},
): Promise<TestRelay> {
  const keysDir = await Deno.makeTempDir({ prefix: "relay-oauth-keys-" });
  const t = await startTestRelay({
    config: {
      ...config,
      oauth: {
        enabled: true,
        listen: "127.0.0.1:0",
        issuer: "http://127.0.0.1:0",
        keys_file: join(keysDir, "keys.json"),
        ...config.oauth,
      },
    },
  });
  const close = t.close;
  t.close = async () => {
    await close();
    await Deno.remove(keysDir, { recursive: true });
  };
  return t;
}

/** Connects our SMTP client to a test relay: SMTPS (or STARTTLS), trusting its CA. */
export async function connectClient(
  t: { smtpsPort: number; submissionPort: number; caPem: string },
  security: "implicit" | "starttls" = "implicit",
): Promise<SmtpClient> {
  return await SmtpClient.connect({
    host: "127.0.0.1",
    port: security === "implicit" ? t.smtpsPort : t.submissionPort,
    security,
    servername: "localhost",
    caCerts: [t.caPem],
    // A reply that never comes fails the test in 30 s, not the production 5 minutes.
    timeouts: { command: 30_000, data: 60_000 },
  });
}

/** {@link connectClient}, then AUTH PLAIN as `user` (alice by default); throws unless 235. */
export async function connectAs(
  t: { smtpsPort: number; submissionPort: number; caPem: string },
  user: TestUser = USERS[0],
  security: "implicit" | "starttls" = "implicit",
): Promise<SmtpClient> {
  const client = await connectClient(t, security);
  try {
    await client.auth({ username: user.email, password: user.password });
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}

/**
 * Sends one message as alice (from alice@example.com) over SMTPS with our
 * client, then QUIT; resolves with the client's send result (the final
 * reply is in `final`).
 */
export async function submitAs(
  t: { smtpsPort: number; submissionPort: number; caPem: string },
  to: string[],
  body = "Subject: test\r\n\r\nhello\r\n",
): Promise<Awaited<ReturnType<SmtpClient["send"]>>> {
  const c = await connectAs(t);
  try {
    return await c.send({ from: USERS[0].email, to, data: new TextEncoder().encode(body) });
  } finally {
    await c.quit();
  }
}

/**
 * Connects and tries AUTH once: the reply code and enhanced status, and the
 * client (authenticated or not) for the caller to use and quit.
 */
export async function authenticate(
  t: { smtpsPort: number; submissionPort: number; caPem: string },
  security: "implicit" | "starttls",
  username: string,
  password: string,
  mechanism: "PLAIN" | "LOGIN" = "PLAIN",
): Promise<{ client: SmtpClient; code: number; enhanced?: string }> {
  const client = await connectClient(t, security);
  try {
    const reply = await client.auth({ username, password, mechanism });
    return { client, code: reply.code, enhanced: reply.enhanced };
  } catch (error) {
    const reply = (error as { reply?: { code: number; enhanced?: string } }).reply;
    if (!reply) {
      client.close();
      throw error;
    }
    return { client, code: reply.code, enhanced: reply.enhanced };
  }
}
