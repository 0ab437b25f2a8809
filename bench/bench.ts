/**
 * Submission benchmark: how fast the relay accepts mail.
 *
 * ```text
 * deno task bench [--scenario sequential,concurrent,pooled] [--mode smtps|starttls]
 *                 [--count 200] [--size 2048] [--concurrency 12] [--warmup 10]
 *                 [--host H --port P [--user U --password-stdin] [--ca FILE] [--servername N]]
 *                 [--from A] [--to A] [--keep] [--json]
 * ```
 *
 * Without `--host` it starts its own relay (temp dir, free ports, test CA;
 * see `relay_process.ts`) and also reports the relay's CPU time per message,
 * read from `/proc/<pid>/stat`. Scenarios:
 * - `sequential`: one connection per message, one at a time;
 * - `concurrent`: one connection per message, `--concurrency` in flight;
 * - `pooled`: `--concurrency` connections, each sending many messages with RSET between.
 *
 * Latency is per message: connect + TLS + EHLO + AUTH + transaction + QUIT
 * for the first two, RSET + transaction for `pooled`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readCpuMs } from "./cpu.ts";
import { type LoadResult, percentile, runPooled, runTasks } from "./load.ts";
import { type RelayProcess, startRelay } from "./relay_process.ts";
import { formatRelayPathReport, runRelayPath } from "./relay_path.ts";
import { signInOverHttp } from "../tests/support/oauth_flow.ts";
import {
  makeMessage,
  openSession,
  type SmtpTarget,
  submitOnNewConnection,
  submitOnPooled,
} from "./smtp_target.ts";

/** One row of the results table. */
export interface ScenarioReport {
  scenario: string;
  mode: string;
  concurrency: number;
  ok: number;
  failed: number;
  msgPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Relay CPU per successful message; null when the relay is not ours. */
  serverCpuMsPerMsg: number | null;
  clientCpuMsPerMsg: number | null;
  errors: Record<string, number>;
}

const SCENARIOS = ["sequential", "concurrent", "pooled"] as const;
type Scenario = typeof SCENARIOS[number];

const USAGE = `usage: deno task bench [options]
  --scenario LIST     sequential,concurrent,pooled (default: all three)
  --mode MODE         smtps (implicit TLS) or starttls (default: smtps)
  --count N           messages per scenario (default 200)
  --size BYTES        message size (default 2048)
  --concurrency N     connections in flight (concurrent, pooled; default 12)
  --warmup N          unmeasured messages before each scenario (default 500: the relay's JIT and disk settle)
  --host H --port P   benchmark a running relay instead of starting one
  --user U            AUTH user for --host (password from stdin with --password-stdin)
  --ca FILE           extra CA certificate (PEM) for --host
  --servername N      TLS name to verify (default: host, or localhost for our relay)
  --from A --to A     envelope (default: the user, and rcpt@example.net)
  --relay-path        also run the full path: relay -> spool -> pooled SMTP -> local sink
  --pool-size N       backend connections for --relay-path (default 4)
  --auth LIST         plain, xoauth2 or both (plain,xoauth2): XOAUTH2 runs get a token from the
                      relay's own OAuth2 server (login form + code exchange, PKCE)
  --log-level L       the started relay's [log] level (default info, as in production)
  --deliver           also deliver to the file outbox (default: spool.hold, accept path only)
  --keep              keep the temp dir of the started relay
  --json              print JSON lines instead of a table`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      scenario: { type: "string", default: SCENARIOS.join(",") },
      mode: { type: "string", default: "smtps" },
      count: { type: "string", default: "200" },
      size: { type: "string", default: "2048" },
      concurrency: { type: "string", default: "12" },
      warmup: { type: "string", default: "500" },
      deliver: { type: "boolean", default: false },
      auth: { type: "string", default: "plain" },
      "log-level": { type: "string", default: "info" },
      "relay-path": { type: "boolean", default: false },
      "pool-size": { type: "string", default: "4" },
      host: { type: "string" },
      port: { type: "string" },
      user: { type: "string" },
      "password-stdin": { type: "boolean", default: false },
      ca: { type: "string" },
      servername: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      keep: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const count = positive(values.count, "--count");
  const size = positive(values.size, "--size");
  const concurrency = positive(values.concurrency, "--concurrency");
  const warmup = Number(values.warmup);
  if (!Number.isInteger(warmup) || warmup < 0) throw new UsageError("--warmup must be >= 0");
  const mode = values.mode;
  if (mode !== "smtps" && mode !== "starttls") throw new UsageError("--mode: smtps or starttls");
  const scenarios = values.scenario.split(",").map((s) => s.trim()).filter(Boolean);
  const auths = values.auth.split(",").map((a) => a.trim().toLowerCase()).filter(Boolean);
  for (const a of auths) {
    if (a !== "plain" && a !== "xoauth2") throw new UsageError(`--auth: unknown method ${a}`);
  }
  for (const s of scenarios) {
    if (!(SCENARIOS as readonly string[]).includes(s)) {
      throw new UsageError(`unknown scenario ${s}`);
    }
  }
  if ((values.host === undefined) !== (values.port === undefined)) {
    throw new UsageError("--host and --port go together");
  }

  let relay: RelayProcess | undefined;
  let target: SmtpTarget;
  const security = mode === "smtps" ? "implicit" : "starttls";
  if (values.host !== undefined) {
    const password = values["password-stdin"] ? await readStdinLine() : undefined;
    if (values.user !== undefined && password === undefined) {
      throw new UsageError("--user needs --password-stdin");
    }
    const from = values.from ?? values.user ?? "bench@example.com";
    target = {
      host: values.host,
      port: positive(values.port, "--port"),
      security,
      servername: values.servername,
      caCerts: values.ca ? [await Deno.readTextFile(values.ca)] : undefined,
      username: values.user,
      password,
      from,
      to: [values.to ?? "rcpt@example.net"],
    };
  } else {
    console.error("starting a relay (main.ts serve) in a temp dir...");
    relay = await startRelay({
      keepDir: values.keep,
      hold: !values.deliver,
      oauth: auths.includes("xoauth2"),
      logLevel: values["log-level"],
    });
    console.error(
      `relay pid ${relay.pid}, smtps ${relay.smtpsPort}, submission ` +
        `${relay.submissionPort}, dir ${relay.dir}${values.keep ? " (kept)" : ""}`,
    );
    target = {
      host: "127.0.0.1",
      port: mode === "smtps" ? relay.smtpsPort : relay.submissionPort,
      security,
      servername: values.servername ?? "localhost",
      caCerts: [relay.caCert],
      username: relay.username,
      password: relay.password,
      from: values.from ?? relay.username,
      to: [values.to ?? "rcpt@example.net"],
    };
  }

  const reports: ScenarioReport[] = [];
  try {
    for (const auth of auths) {
      let authTarget = target;
      if (auth === "xoauth2") {
        if (!relay?.oauthUrl) throw new UsageError("--auth xoauth2 needs the bench's own relay");
        const tokens = await signInOverHttp({
          issuer: relay.oauthUrl,
          redirectUri: "http://127.0.0.1:1/callback",
          email: relay.username,
          password: relay.password,
        });
        authTarget = { ...target, password: undefined, accessToken: tokens.access_token };
      }
      for (const scenario of scenarios as Scenario[]) {
        const report = await runScenario({
          scenario,
          mode: auths.length > 1 || auth !== "plain" ? `${mode}/${auth}` : mode,
          target: authTarget,
          count,
          size,
          concurrency: scenario === "sequential" ? 1 : concurrency,
          warmup,
          serverPid: relay?.pid,
        });
        reports.push(report);
        if (values.json) console.log(JSON.stringify(report));
      }
    }
  } catch (error) {
    if (relay) console.error(`relay output (tail):\n${relay.output()}`);
    throw error;
  } finally {
    await relay?.stop();
  }
  if (!values.json) console.log(formatTable(reports));
  let failures = reports.reduce((n, r) => n + r.failed, 0);
  if (values["relay-path"] && !values.host) {
    // The full path: client -> relay -> spool -> pooled relay -> local sink backend.
    const path = await runRelayPath({
      count,
      size,
      concurrency,
      mode: mode as "smtps" | "starttls",
      warmup,
      poolSize: Number(values["pool-size"]),
      logLevel: values["log-level"],
      keepDir: values.keep,
    });
    console.log(values.json ? JSON.stringify(path) : "\n" + formatRelayPathReport(path));
    if (path.failed > 0 || path.delivered < path.accepted) failures++;
  }
  for (const r of reports) {
    for (const [kind, n] of Object.entries(r.errors)) {
      console.error(`${r.scenario}: ${n} × ${kind}`);
    }
  }
  return failures > 0 ? 1 : 0;
}

/** Options for {@linkcode runScenario}. */
export interface RunScenarioOptions {
  scenario: Scenario;
  mode: string;
  target: SmtpTarget;
  count: number;
  size: number;
  concurrency: number;
  warmup: number;
  /** The relay's pid, when its CPU can be read. */
  serverPid?: number;
}

/** Runs one scenario (after an unmeasured warm-up) and measures it. */
export async function runScenario(options: RunScenarioOptions): Promise<ScenarioReport> {
  const { target, scenario } = options;
  const message = makeMessage({ from: target.from, to: target.to, size: options.size });
  const run = (count: number): Promise<LoadResult> =>
    scenario === "pooled"
      ? runPooled({
        count,
        sessions: options.concurrency,
        open: () => openSession(target),
        task: (client, _i, onSession) => submitOnPooled(client, target, message, onSession),
        close: async (client, broken) => {
          if (broken) client.close();
          else await client.quit();
        },
        maxFailures: Math.max(10, count / 10),
      })
      : runTasks({
        count,
        concurrency: options.concurrency,
        task: () => submitOnNewConnection(target, message),
        maxFailures: Math.max(10, count / 10),
      });
  if (options.warmup > 0) await run(options.warmup);
  const server0 = options.serverPid ? await readCpuMs(options.serverPid) : null;
  const client0 = await readCpuMs("self");
  const result = await run(options.count);
  const server1 = options.serverPid ? await readCpuMs(options.serverPid) : null;
  const client1 = await readCpuMs("self");
  const perMsg = (a: number | null, b: number | null) =>
    a === null || b === null || result.ok === 0 ? null : (b - a) / result.ok;
  return {
    scenario,
    mode: options.mode,
    concurrency: options.concurrency,
    ok: result.ok,
    failed: result.failed,
    msgPerSecond: result.ok / (result.wallMs / 1000),
    p50Ms: percentile(result.latenciesMs, 50),
    p99Ms: percentile(result.latenciesMs, 99),
    serverCpuMsPerMsg: perMsg(server0, server1),
    clientCpuMsPerMsg: perMsg(client0, client1),
    errors: Object.fromEntries(result.errors),
  };
}

/** Formats reports as an aligned text table. */
export function formatTable(reports: ScenarioReport[]): string {
  const header = [
    "scenario",
    "mode",
    "conc",
    "messages",
    "failed",
    "msg/s",
    "p50 ms",
    "p99 ms",
    "server CPU ms/msg",
    "client CPU ms/msg",
  ];
  const fixed = (n: number | null, digits: number) =>
    n === null || Number.isNaN(n) ? "-" : n.toFixed(digits);
  const rows = reports.map((r) => [
    r.scenario,
    r.mode,
    String(r.concurrency),
    String(r.ok),
    String(r.failed),
    fixed(r.msgPerSecond, 0),
    fixed(r.p50Ms, 1),
    fixed(r.p99Ms, 1),
    fixed(r.serverCpuMsPerMsg, 2),
    fixed(r.clientCpuMsPerMsg, 2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  const note = "CPU from /proc (10 ms ticks); server CPU only for a relay started by the bench.";
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line), note]
    .join("\n");
}

class UsageError extends Error {}

function positive(text: string | undefined, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive integer`);
  return n;
}

async function readStdinLine(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of Deno.stdin.readable) chunks.push(chunk);
  const text = new TextDecoder().decode(
    Uint8Array.from(chunks.flatMap((c) => [...c])),
  );
  return text.split(/\r?\n/)[0];
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE")) {
      console.error(`${(error as Error).message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    console.error(error);
    Deno.exit(1);
  }
}
