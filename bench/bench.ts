/**
 * Submission benchmark: how fast the relay accepts mail, side by side with a
 * ceiling measured in the same run.
 *
 * ```text
 * deno task bench [--systems ceiling,relay-sink,relay-file] [--rounds 1]
 *                 [--scenario pooled,concurrent,sequential] [--mode smtps|starttls]
 *                 [--count 2000] [--size 1024] [--concurrency 12] [--warmup 500]
 *                 [--host H --port P [--user U --password-stdin] [--ca FILE] [--servername N]]
 *                 [--from A] [--to A] [--keep] [--json]
 * ```
 *
 * Without `--host` it starts its own servers, each a process of its own whose
 * CPU time is read from `/proc/<pid>/stat`:
 * - `ceiling`: npm `smtp-server` doing zero work (accept-all, discard; see
 *   `ceiling_server.ts`), the practical ceiling of a JS SMTP server here;
 * - `relay-sink`: the relay delivering to Postfix's `smtp-sink`;
 * - `relay-file`: the relay delivering to a `file:` outbox;
 * - `relay-hold`: the relay keeping what it accepts (`spool.hold`).
 *
 * Each scenario runs on every system before the next scenario starts, the
 * systems in reverse order every other round, so that they share the same
 * machine weather; every row is reported as a ratio to the ceiling's row of
 * the same scenario. For the delivering relays the measurement ends when the
 * spool is empty again, so their CPU per message includes delivery.
 * Scenarios:
 * - `sequential`: one connection per message, one at a time;
 * - `concurrent`: one connection per message, `--concurrency` in flight;
 * - `pooled`: `--concurrency` connections, each sending many messages with RSET between.
 *
 * Latency is per message: connect + TLS + EHLO + AUTH + transaction + QUIT
 * for the first two, RSET + transaction for `pooled`.
 *
 * Then `server.workers` compared (`--workers-compare 1,2`): the `concurrent`
 * scenario (a new connection per message) on a relay-sink with each worker
 * count, in the same run and alternating order, and each rate as a ratio to
 * the first count's (the goal on a 2-core machine with the load generator
 * sharing the cores: 2 workers ≥ 1.3× one).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeTestCertificates } from "../src/delivery/_smtp_test_server.ts";
import { startCeiling } from "./ceiling_server.ts";
import { readCpuMs } from "./cpu.ts";
import {
  alignTable,
  fixedOrDash,
  type LoadResult,
  percentile,
  runPooled,
  runTasks,
} from "./load.ts";
import { type RelayProcess, relayTarget, startRelay } from "./relay_process.ts";
import { formatRelayPathReport, runRelayPath } from "./relay_path.ts";
import { startSmtpSink } from "./smtp_sink_backend.ts";
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
  /** Which server: `ceiling`, `relay-sink`, `relay-file`, `relay-hold` or `target`. */
  system: string;
  scenario: string;
  mode: string;
  concurrency: number;
  ok: number;
  failed: number;
  msgPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU per successful message (per connection in the new-connection rows); null when not ours. */
  serverCpuMsPerMsg: number | null;
  clientCpuMsPerMsg: number | null;
  /** msg/s divided by the ceiling's in the same scenario; null without a ceiling. */
  rateVsCeiling: number | null;
  /** Server CPU per message divided by the ceiling's; null without a ceiling. */
  cpuVsCeiling: number | null;
  errors: Record<string, number>;
}

/** The load shapes: many messages per connection, a new connection per message, one client. */
export const SCENARIOS = ["pooled", "concurrent", "sequential"] as const;
/** One of {@link SCENARIOS}. */
export type Scenario = typeof SCENARIOS[number];
const SYSTEMS = ["ceiling", "relay-sink", "relay-file", "relay-hold"] as const;
type SystemName = typeof SYSTEMS[number];

const USAGE = `usage: deno task bench [options]
  --systems LIST      ceiling, relay-sink, relay-file, relay-hold
                      (default: ceiling,relay-sink,relay-file)
  --rounds N          run every scenario on every system N times, alternating the order (default 1)
  --scenario LIST     pooled,concurrent,sequential (default: all three)
  --mode MODE         smtps (implicit TLS) or starttls (default: smtps)
  --count N           messages per scenario (default 2000)
  --size BYTES        message size (default 1024)
  --concurrency N     connections in flight (concurrent, pooled; default 12)
  --warmup N          unmeasured messages before each row (default 500: JIT and disk settle)
  --smoke             a quick check that everything runs: --count 40 --warmup 5 --concurrency 4
  --host H --port P   benchmark a running server instead (no ceiling, no server CPU)
  --user U            AUTH user for --host (password from stdin with --password-stdin)
  --ca FILE           extra CA certificate (PEM) for --host
  --servername N      TLS name to verify (default: host, or localhost for our servers)
  --from A --to A     envelope (default: the user, and rcpt@example.net)
  --relay-path        also run the full path with per-message latency to the backend
  --pool-size N       backend connections for --relay-path (default 4)
  --auth LIST         plain, xoauth2 or both (plain,xoauth2): XOAUTH2 runs get a token from the
                      relay's own OAuth2 server (login form + code exchange, PKCE)
  --log-level L       the started relays' [log] level (default info, as in production)
  --workers N         the started relays' [server] workers (default: the embedded 1)
  --workers-compare L worker counts compared on the new-connection scenario with relay-sink
                      (default 1,2; "none" skips it)
  --keep              keep the temp dirs of the started relays
  --json              print JSON lines instead of a table`;

/** A server under test: where to submit, and how to read its CPU and wait for its backlog. */
interface System {
  name: SystemName | "target";
  target: SmtpTarget;
  pid?: number;
  /** Resolves when everything accepted so far has left the server (delivering relays). */
  settle?: () => Promise<void>;
  relay?: RelayProcess;
}

/** The `server.workers` comparison: one row per worker count, and its rate against the first. */
export interface WorkersReport {
  workers: number;
  report: ScenarioReport;
  /** msg/s divided by the first worker count's. */
  rateVsFirst: number;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      systems: { type: "string", default: "ceiling,relay-sink,relay-file" },
      rounds: { type: "string", default: "1" },
      scenario: { type: "string", default: SCENARIOS.join(",") },
      mode: { type: "string", default: "smtps" },
      count: { type: "string", default: "2000" },
      size: { type: "string", default: "1024" },
      concurrency: { type: "string", default: "12" },
      warmup: { type: "string", default: "500" },
      smoke: { type: "boolean", default: false },
      auth: { type: "string", default: "plain" },
      "log-level": { type: "string", default: "info" },
      workers: { type: "string" },
      "workers-compare": { type: "string", default: "1,2" },
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
  if (values.smoke) {
    values.count = "40";
    values.warmup = "5";
    values.concurrency = "4";
  }
  const count = positive(values.count, "--count");
  const size = positive(values.size, "--size");
  const concurrency = positive(values.concurrency, "--concurrency");
  const rounds = positive(values.rounds, "--rounds");
  const warmup = Number(values.warmup);
  if (!Number.isInteger(warmup) || warmup < 0) throw new UsageError("--warmup must be >= 0");
  const mode = values.mode;
  if (mode !== "smtps" && mode !== "starttls") throw new UsageError("--mode: smtps or starttls");
  const scenarios = list(values.scenario, SCENARIOS, "scenario");
  const systemNames = list(values.systems, SYSTEMS, "system");
  const auths = values.auth.split(",").map((a) => a.trim().toLowerCase()).filter(Boolean);
  for (const a of auths) {
    if (a !== "plain" && a !== "xoauth2") throw new UsageError(`--auth: unknown method ${a}`);
  }
  if ((values.host === undefined) !== (values.port === undefined)) {
    throw new UsageError("--host and --port go together");
  }
  const workers = values.workers === undefined || values.workers === "auto"
    ? values.workers as "auto" | undefined
    : positive(values.workers, "--workers");
  const compared = values["workers-compare"] === "none" || values.host !== undefined
    ? []
    : values["workers-compare"].split(",").map((n) => positive(n.trim(), "--workers-compare"));
  const workersReports: WorkersReport[] = [];

  const security = mode === "smtps" ? "implicit" : "starttls";
  const systems: System[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const reports: ScenarioReport[] = [];
  try {
    if (values.host !== undefined) {
      const password = values["password-stdin"] ? await readStdinLine() : undefined;
      if (values.user !== undefined && password === undefined) {
        throw new UsageError("--user needs --password-stdin");
      }
      systems.push({
        name: "target",
        target: {
          host: values.host,
          port: positive(values.port, "--port"),
          security,
          servername: values.servername,
          caCerts: values.ca ? [await Deno.readTextFile(values.ca)] : undefined,
          username: values.user,
          password,
          from: values.from ?? values.user ?? "bench@example.com",
          to: [values.to ?? "rcpt@example.net"],
        },
      });
    } else {
      for (const name of systemNames) {
        systems.push(
          await startSystem(name, {
            mode,
            keep: values.keep,
            oauth: auths.includes("xoauth2"),
            logLevel: values["log-level"],
            from: values.from,
            to: values.to,
            servername: values.servername,
            cleanups,
            workers,
          }),
        );
      }
    }
    for (const auth of auths) {
      const authed = await Promise.all(systems.map((system) => withAuth(system, auth)));
      for (const scenario of scenarios) {
        const runs: ScenarioReport[] = [];
        const latencies = new Map<string, number[]>();
        for (let round = 0; round < rounds; round++) {
          const order = round % 2 === 0 ? authed : [...authed].reverse();
          for (const system of order) {
            const { report, latenciesMs } = await runScenario({
              scenario,
              mode: auths.length > 1 || auth !== "plain" ? `${mode}/${auth}` : mode,
              target: system.target,
              count,
              size,
              concurrency: scenario === "sequential" ? 1 : concurrency,
              warmup,
              serverPid: system.pid,
              settle: system.settle,
            });
            report.system = system.name;
            runs.push(report);
            latencies.set(system.name, [...(latencies.get(system.name) ?? []), ...latenciesMs]);
          }
        }
        const merged = withRatios(mergeRounds(runs, latencies));
        for (const report of merged) {
          reports.push(report);
          if (values.json) console.log(JSON.stringify(report));
        }
      }
    }
    if (compared.length > 0) {
      const rows = await compareWorkers(compared, {
        start: {
          mode,
          keep: values.keep,
          oauth: false,
          logLevel: values["log-level"],
          from: values.from,
          to: values.to,
          servername: values.servername,
          cleanups,
        },
        systems,
        rounds,
        count,
        size,
        concurrency,
        warmup,
      });
      for (const row of rows) {
        workersReports.push(row);
        if (values.json) console.log(JSON.stringify({ workers: row.workers, ...row.report }));
      }
    }
  } catch (error) {
    for (const system of systems) {
      if (system.relay) console.error(`${system.name} output (tail):\n${system.relay.output()}`);
    }
    throw error;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
  if (!values.json) console.log(formatTable(reports));
  if (!values.json && workersReports.length > 0) {
    console.log(`\n${formatWorkersTable(workersReports)}`);
  }
  let failures = reports.reduce((n, r) => n + r.failed, 0) +
    workersReports.reduce((n, r) => n + r.report.failed, 0);
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
      console.error(`${r.system} ${r.scenario}: ${n} × ${kind}`);
    }
  }
  return failures > 0 ? 1 : 0;
}

interface StartOptions {
  mode: "smtps" | "starttls";
  keep: boolean;
  oauth: boolean;
  logLevel: string;
  from?: string;
  to?: string;
  servername?: string;
  /** Where each started process registers its stop. */
  cleanups: (() => Promise<void>)[];
  /** `[server] workers` of a started relay (default: the embedded default). */
  workers?: number | "auto";
}

/** Starts one system (and its backend) and says how to reach it. */
async function startSystem(name: SystemName, options: StartOptions): Promise<System> {
  const security = options.mode === "smtps" ? "implicit" : "starttls";
  if (name === "ceiling") {
    const dir = await Deno.makeTempDir({ prefix: "relay_bench_ceiling_" });
    options.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    const certs = await makeTestCertificates(dir);
    const ceiling = await startCeiling({
      certPath: certs.certPath,
      keyPath: certs.keyPath,
      starttls: options.mode === "starttls",
    });
    options.cleanups.push(ceiling.stop);
    console.error(`ceiling (npm smtp-server, zero work): pid ${ceiling.pid}, port ${ceiling.port}`);
    return {
      name,
      pid: ceiling.pid,
      target: {
        host: "127.0.0.1",
        port: ceiling.port,
        security,
        servername: options.servername ?? "localhost",
        caCerts: [certs.caCert],
        username: "bench@example.com",
        password: "anything",
        from: options.from ?? "bench@example.com",
        to: [options.to ?? "rcpt@example.net"],
      },
    };
  }
  let relayUrl: string | undefined;
  if (name === "relay-sink") {
    const sink = await startSmtpSink();
    options.cleanups.push(sink.stop);
    relayUrl = `smtp://127.0.0.1:${sink.port}?tls=none`;
  }
  console.error(`starting ${name} (main.ts serve) in a temp dir...`);
  const relay = await startRelay({
    keepDir: options.keep,
    hold: name === "relay-hold",
    relayUrl,
    oauth: options.oauth,
    logLevel: options.logLevel,
    workers: options.workers,
  });
  options.cleanups.push(relay.stop);
  console.error(
    `${name}: pid ${relay.pid}, smtps ${relay.smtpsPort}, submission ${relay.submissionPort}, ` +
      `dir ${relay.dir}${options.keep ? " (kept)" : ""}`,
  );
  return {
    name,
    pid: relay.pid,
    relay,
    settle: name === "relay-hold" ? undefined : () => untilSpoolEmpty(relay),
    target: relayTarget(relay, options),
  };
}

/**
 * The `concurrent` scenario (a new connection per message) on a relay-sink
 * per worker count, the counts in alternating order every round; each row's
 * rate against the first count's.
 */
async function compareWorkers(
  counts: number[],
  options: {
    start: StartOptions;
    /** Started systems, stopped first so they take no memory or CPU from the comparison. */
    systems: System[];
    rounds: number;
    count: number;
    size: number;
    concurrency: number;
    warmup: number;
  },
): Promise<WorkersReport[]> {
  for (const system of options.systems) await system.relay?.stop();
  const relays: { workers: number; system: System }[] = [];
  for (const workers of counts) {
    const system = await startSystem("relay-sink", { ...options.start, workers });
    relays.push({ workers, system: { ...system, name: "relay-sink" } });
  }
  const runs: ScenarioReport[] = [];
  const latencies = new Map<string, number[]>();
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? relays : [...relays].reverse();
    for (const { workers, system } of order) {
      const { report, latenciesMs } = await runScenario({
        scenario: "concurrent",
        mode: options.start.mode,
        target: system.target,
        count: options.count,
        size: options.size,
        concurrency: options.concurrency,
        warmup: options.warmup,
        serverPid: system.pid,
        settle: system.settle,
      });
      report.system = `workers=${workers}`;
      runs.push(report);
      latencies.set(report.system, [...(latencies.get(report.system) ?? []), ...latenciesMs]);
    }
  }
  const merged = mergeRounds(runs, latencies);
  const first = merged[0]?.msgPerSecond ?? 0;
  return relays.map(({ workers }) => {
    const report = merged.find((r) => r.system === `workers=${workers}`)!;
    return { workers, report, rateVsFirst: first > 0 ? report.msgPerSecond / first : 0 };
  });
}

/** Formats the `server.workers` comparison. */
export function formatWorkersTable(rows: WorkersReport[]): string {
  const header = [
    "relay-sink",
    "scenario",
    "conc",
    "messages",
    "failed",
    "msg/s",
    `× workers=${rows[0].workers}`,
    "p50 ms",
    "p99 ms",
    "server CPU ms/conn",
    "client CPU ms/conn",
    "cores busy",
    "most possible",
  ];
  const cores = navigator.hardwareConcurrency;
  const table = rows.map(({ workers, report: r, rateVsFirst }) => {
    const busy = coresBusy(r);
    return [
      `workers=${workers}`,
      r.scenario,
      String(r.concurrency),
      String(r.ok),
      String(r.failed),
      fixedOrDash(r.msgPerSecond, 0),
      fixedOrDash(rateVsFirst, 2),
      fixedOrDash(r.p50Ms, 1),
      fixedOrDash(r.p99Ms, 1),
      fixedOrDash(r.serverCpuMsPerMsg, 2),
      fixedOrDash(r.clientCpuMsPerMsg, 2),
      fixedOrDash(busy, 2),
      fixedOrDash(busy === null ? null : r.msgPerSecond * cores / busy, 0),
    ];
  });
  return `server.workers compared: a new connection per message, the load generator on the ` +
    `same cores\n${alignTable(header, table, 3)}\n` +
    `cores busy: (server + client CPU per connection) × rate, of ${cores}; most possible: the ` +
    `rate if all ${cores} cores were busy\nat that CPU per connection (the backend's CPU left ` +
    `out), the bound on what more workers can give.`;
}

/** Cores the relay and the load generator kept busy in one row (null without CPU figures). */
export function coresBusy(r: ScenarioReport): number | null {
  if (r.serverCpuMsPerMsg === null || r.clientCpuMsPerMsg === null) return null;
  return (r.serverCpuMsPerMsg + r.clientCpuMsPerMsg) * r.msgPerSecond / 1000;
}

/** Waits until a delivering relay's spool is empty (everything delivered), at most 5 minutes. */
async function untilSpoolEmpty(relay: RelayProcess): Promise<void> {
  const deadline = performance.now() + 300_000;
  while ((await relay.spooled()) > 0) {
    if (performance.now() > deadline) throw new Error("the relay did not deliver its spool");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The system as seen with `auth` (XOAUTH2: a token from the relay's OAuth2 server). */
async function withAuth(system: System, auth: string): Promise<System> {
  if (auth !== "xoauth2") return system;
  if (system.name === "ceiling") {
    // The ceiling accepts any token, unchecked.
    return { ...system, target: { ...system.target, password: undefined, accessToken: "any" } };
  }
  if (!system.relay?.oauthUrl) throw new UsageError("--auth xoauth2 needs the bench's own relays");
  const tokens = await signInOverHttp({
    issuer: system.relay.oauthUrl,
    redirectUri: "http://127.0.0.1:1/callback",
    email: system.relay.username,
    password: system.relay.password,
  });
  return {
    ...system,
    target: { ...system.target, password: undefined, accessToken: tokens.access_token },
  };
}

/** Sums the rounds of each system into one row (rates from summed time, CPU from summed CPU). */
export function mergeRounds(
  runs: ScenarioReport[],
  latencies: Map<string, number[]> = new Map(),
): ScenarioReport[] {
  const bySystem = new Map<string, ScenarioReport[]>();
  for (const run of runs) bySystem.set(run.system, [...(bySystem.get(run.system) ?? []), run]);
  return [...bySystem.values()].map((group) => {
    const ok = group.reduce((n, r) => n + r.ok, 0);
    const seconds = group.reduce((n, r) => n + (r.msgPerSecond > 0 ? r.ok / r.msgPerSecond : 0), 0);
    const cpu = (pick: (r: ScenarioReport) => number | null) =>
      group.some((r) => pick(r) === null) || ok === 0
        ? null
        : group.reduce((n, r) => n + pick(r)! * r.ok, 0) / ok;
    const samples = latencies.get(group[0].system);
    const errors: Record<string, number> = {};
    for (const r of group) {
      for (const [k, n] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + n;
    }
    return {
      ...group[0],
      ok,
      failed: group.reduce((n, r) => n + r.failed, 0),
      msgPerSecond: seconds > 0 ? ok / seconds : 0,
      p50Ms: samples ? percentile(samples, 50) : group[0].p50Ms,
      p99Ms: samples ? percentile(samples, 99) : group[0].p99Ms,
      serverCpuMsPerMsg: cpu((r) => r.serverCpuMsPerMsg),
      clientCpuMsPerMsg: cpu((r) => r.clientCpuMsPerMsg),
      errors,
    };
  });
}

/** Fills in each row's ratios to the `ceiling` row (all rows: one scenario and mode). */
export function withRatios(rows: ScenarioReport[]): ScenarioReport[] {
  const ceiling = rows.find((r) => r.system === "ceiling");
  return rows.map((r) => ({
    ...r,
    rateVsCeiling: ceiling && ceiling.msgPerSecond > 0
      ? r.msgPerSecond / ceiling.msgPerSecond
      : null,
    cpuVsCeiling: ceiling?.serverCpuMsPerMsg && r.serverCpuMsPerMsg !== null
      ? r.serverCpuMsPerMsg / ceiling.serverCpuMsPerMsg
      : null,
  }));
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
  /** The server's pid, when its CPU can be read. */
  serverPid?: number;
  /** Waits until the server has finished what it accepted (its delivery backlog). */
  settle?: () => Promise<void>;
}

/**
 * Runs one scenario (after an unmeasured warm-up) and measures it. With
 * `settle`, the backlog of the warm-up is gone before the measurement starts,
 * and the server's CPU is read once the measured messages are gone too.
 */
export async function runScenario(
  options: RunScenarioOptions,
): Promise<{ report: ScenarioReport; latenciesMs: number[] }> {
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
  await options.settle?.();
  const server0 = options.serverPid ? await readCpuMs(options.serverPid) : null;
  const client0 = await readCpuMs("self");
  const result = await run(options.count);
  const client1 = await readCpuMs("self");
  await options.settle?.();
  const server1 = options.serverPid ? await readCpuMs(options.serverPid) : null;
  const perMsg = (a: number | null, b: number | null) =>
    a === null || b === null || result.ok === 0 ? null : (b - a) / result.ok;
  return {
    latenciesMs: result.latenciesMs,
    report: {
      system: "target",
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
      rateVsCeiling: null,
      cpuVsCeiling: null,
      errors: Object.fromEntries(result.errors),
    },
  };
}

/** Formats reports as an aligned text table. */
export function formatTable(reports: ScenarioReport[]): string {
  const header = [
    "system",
    "scenario",
    "mode",
    "conc",
    "messages",
    "failed",
    "msg/s",
    "× ceiling",
    "p50 ms",
    "p99 ms",
    "server CPU ms/msg",
    "CPU × ceiling",
    "client CPU ms/msg",
  ];
  const rows = reports.map((r) => [
    r.system,
    r.scenario,
    r.mode,
    String(r.concurrency),
    String(r.ok),
    String(r.failed),
    fixedOrDash(r.msgPerSecond, 0),
    fixedOrDash(r.rateVsCeiling, 2),
    fixedOrDash(r.p50Ms, 1),
    fixedOrDash(r.p99Ms, 1),
    fixedOrDash(r.serverCpuMsPerMsg, 2),
    fixedOrDash(r.cpuVsCeiling, 2),
    fixedOrDash(r.clientCpuMsPerMsg, 2),
  ]);
  const note = "CPU from /proc (10 ms ticks), per message (per connection in the new-connection " +
    "rows),\nfor delivering relays until their spool is empty again; × ceiling: against the " +
    "zero-work smtp-server row of the same scenario.";
  return `${alignTable(header, rows, 3)}\n${note}`;
}

class UsageError extends Error {}

function list<T extends string>(text: string, known: readonly T[], what: string): T[] {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!(known as readonly string[]).includes(item)) {
      throw new UsageError(`unknown ${what} ${item}`);
    }
  }
  return items as T[];
}

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
