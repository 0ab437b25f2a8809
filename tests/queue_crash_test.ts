/**
 * Restart safety: the relay (a real `main.ts serve` process) is killed with
 * SIGKILL while it delivers 500 accepted messages. After a restart every
 * message that got a 250 reaches the backend; none is lost. Duplicates are
 * allowed only for deliveries in flight at the kill (the backend's 250 came,
 * our record of it did not), so there are at most as many as workers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SmtpClient } from "../src/delivery/mod.ts";
import { Spool } from "../src/queue/mod.ts";
import { SmtpSink } from "./support/sink.ts";
import { until } from "./support/until.ts";
import { freePort } from "./support/ports.ts";
import { serveConfig, type ServeProcess, startServe } from "./support/serve_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const TOTAL = 500;
const WORKERS = 16;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Server {
  process: ServeProcess;
  port: number;
}

/**
 * Writes the config for a free port, starts `main.ts serve` and waits for its
 * SMTPS port; another free port when that one was taken in the meantime.
 */
async function serve(writeConfig: (port: number) => Promise<string>): Promise<Server> {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    const configPath = await writeConfig(port);
    try {
      const process = await startServe({
        args: ["-A", MAIN, "serve", "--config", configPath],
        cwd: ROOT,
        ready: { port },
      });
      return { process, port };
    } catch (error) {
      if (attempt < 3 && /address already in use/i.test(String(error))) continue;
      throw error;
    }
  }
}

/** TOTAL subjects `<prefix>-<n>`, dealt round-robin to 4 clients. */
function lanesOf(prefix: string): string[][] {
  const subjects = Array.from({ length: TOTAL }, (_, i) => `${prefix}-${i}`);
  return [0, 1, 2, 3].map((lane) => subjects.filter((_, i) => i % 4 === lane));
}

/** Stops a relay the test left running (SIGTERM), if any. */
async function stop(server: Server | undefined): Promise<void> {
  if (!server) return;
  try {
    server.process.kill("SIGTERM");
  } catch { /* already gone */ }
  await server.process.status();
}

/**
 * Sends `subjects` over one authenticated connection; returns those that got
 * a 250 (each also told to `onAccepted`).
 */
async function sendAll(
  port: number,
  caPem: string,
  subjects: string[],
  onAccepted: () => void = () => {},
): Promise<string[]> {
  const accepted: string[] = [];
  let client: SmtpClient | undefined;
  try {
    client = await SmtpClient.connect({
      host: "127.0.0.1",
      port,
      security: "implicit",
      servername: "localhost",
      caCerts: [caPem],
    });
    await client.auth({ username: "alice@example.com", password: "crash-test-pw" });
    for (const subject of subjects) {
      const result = await client.send({
        from: "alice@example.com",
        to: ["bob@dest.org"],
        data: encoder.encode(`Subject: ${subject}\r\n\r\nbody of ${subject}\r\n`),
      });
      if (result.final?.code === 250) {
        accepted.push(subject);
        onAccepted();
      }
    }
    await client.quit();
  } catch {
    // The relay was killed under us: what got a 250 so far is what counts.
    client?.close();
  }
  return accepted;
}

/** How many messages the spool in `dir` holds (read beside the relay). */
async function spooled(dir: string): Promise<number> {
  const spool = await Spool.attach(join(dir, "spool"));
  try {
    return spool.count();
  } finally {
    await spool.close();
  }
}

/** A relay's files in a temp dir (config for a port, a user), its backend sink; `close` removes both. */
interface CrashSetup {
  dir: string;
  sink: SmtpSink;
  writeConfig: (port: number) => Promise<string>;
  close(): Promise<void>;
}

async function prepare(): Promise<CrashSetup> {
  const dir = await Deno.makeTempDir({ prefix: "relay_crash_" });
  const sink = await SmtpSink.start();
  const configPath = join(dir, "relay.toml");
  const writeConfig = async (port: number) => {
    await Deno.writeTextFile(
      configPath,
      serveConfig(dir, {
        listener: "smtps",
        port,
        sections: {
          auth: { workers: 1 },
          "auth.argon2": { memory_kib: 64, iterations: 1 },
          relay: {
            url: `smtp://127.0.0.1:${sink.port}?tls=none`,
            pool_size: 4,
            workers: WORKERS,
            retry_schedule: [0.2],
            scan_interval: 0.2,
          },
          rate_limit: { per_minute: 100000000, per_hour: 100000000 },
          log: { level: "error" },
        },
      }),
    );
    return configPath;
  };
  await writeConfig(0); // the user command binds nothing
  const add = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "user",
      "add",
      "alice@example.com",
      "--password-stdin",
      "--config",
      configPath,
    ],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = add.stdin.getWriter();
  await writer.write(encoder.encode("crash-test-pw\n"));
  await writer.close();
  const added = await add.output();
  assert.equal(added.code, 0, decoder.decode(added.stderr));
  return {
    dir,
    sink,
    writeConfig,
    async close() {
      await sink.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("restart safety: SIGKILL while delivering 500 messages loses none that got a 250", async () => {
  const { dir, sink, writeConfig, close } = await prepare();
  let server: Server | undefined;
  try {
    server = await serve(writeConfig);
    const caPem = await Deno.readTextFile(join(dir, "certs", "ca.crt"));
    const lanes = lanesOf("crash");
    // Accept all 500 while the backend is slow, then kill in the middle of delivering them.
    sink.finalDelayMs = 40;
    const acceptedBeforeKill = (await Promise.all(lanes.map((l) =>
      sendAll(server!.port, caPem, l)
    )))
      .flat();
    assert.equal(acceptedBeforeKill.length, TOTAL);
    await sink.waitForMessages(Math.min(sink.messages.length + 40, TOTAL - 100), 20_000);
    server.process.kill("SIGKILL");
    const status = await server.process.status();
    assert.equal(status.signal, "SIGKILL");
    const deliveredAtKill = sink.messages.length;
    assert.ok(deliveredAtKill < TOTAL - 50, `killed while delivering (${deliveredAtKill} done)`);
    sink.finalDelayMs = 0;

    server = await serve(writeConfig);

    const subjectOf = (text: string) => /^Subject: (\S+)/m.exec(text)![1];
    let seen = new Set<string>();
    await until("every subject at the backend", () => {
      seen = new Set(sink.texts().map(subjectOf));
      return seen.size >= TOTAL;
    }, 30_000).catch(() => {/* the assertions below say what is missing */});
    const lost = acceptedBeforeKill.filter((s) => !seen.has(s));
    assert.deepEqual(lost, [], "every message that got a 250 before the kill was delivered");
    assert.equal(seen.size, TOTAL);
    const duplicates = sink.messages.length - seen.size;
    assert.ok(duplicates <= WORKERS, `${duplicates} duplicates, at most one per worker`);
    // Everything delivered: the spool holds no message.
    await until("an empty spool", async () => (await spooled(dir)) === 0);
  } catch (error) {
    if (server) console.error(`relay output:\n${server.process.output()}`);
    throw error;
  } finally {
    await stop(server);
    await close();
  }
});

Deno.test("restart safety: SIGKILL while 4 clients submit loses none that got a 250", async () => {
  const { dir, sink, writeConfig, close } = await prepare();
  let server: Server | undefined;
  try {
    server = await serve(writeConfig);
    const caPem = await Deno.readTextFile(join(dir, "certs", "ca.crt"));
    const lanes = lanesOf("accept");
    // Kill while commits are in flight: the 4 lanes share group commits.
    let count = 0;
    const killer = server;
    const accepted = (await Promise.all(lanes.map((l) =>
      sendAll(killer.port, caPem, l, () => {
        if (++count === 150) killer.process.kill("SIGKILL");
      })
    ))).flat();
    assert.equal((await server.process.status()).signal, "SIGKILL");
    assert.ok(accepted.length >= 150 && accepted.length < TOTAL, `${accepted.length} accepted`);

    server = await serve(writeConfig);
    const subjectOf = (text: string) => /^Subject: (\S+)/m.exec(text)![1];
    let seen = new Set<string>();
    await until("every accepted subject at the backend", () => {
      seen = new Set(sink.texts().map(subjectOf));
      return accepted.every((s) => seen.has(s));
    }, 30_000).catch(() => {/* the assertion below says what is missing */});
    assert.deepEqual(accepted.filter((s) => !seen.has(s)), [], "every 250 was delivered");
    await until("an empty spool", async () => (await spooled(dir)) === 0);
  } catch (error) {
    if (server) console.error(`relay output:\n${server.process.output()}`);
    throw error;
  } finally {
    await stop(server);
    await close();
  }
});
