/**
 * A real `redis-server` (Debian's) for tests: started in the foreground on a
 * free 127.0.0.1 port with no persistence, stopped (and restartable on the
 * same port, empty) by the test.
 *
 * @example
 * ```ts ignore
 * const redis = await startRedis();
 * // config: { state: { backend: "redis", url: redis.url } }
 * await redis.stop();   // Redis goes away mid-run
 * await redis.start();  // back, empty, same port
 * await redis.close();
 * ```
 *
 * @module
 */
import { until } from "./until.ts";
import { accepts, freePort } from "./ports.ts";

/** A running (or stopped) test Redis. */
export interface TestRedis {
  /** `redis://127.0.0.1:PORT/0` */
  url: string;
  port: number;
  /** Stops the server (SIGKILL: nothing is saved, as after a crash). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open, nothing is answered (a hung server). */
  pause(): void;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
  /** Stops it for good. */
  close(): Promise<void>;
}

/** Options for {@link startRedis}. */
export interface RedisOptions {
  /** `requirepass`: clients must AUTH with it. */
  password?: string;
  /** TLS only (no plain port), with this certificate and key; the URL is then `rediss://`. */
  tls?: { cert: string; key: string };
}

/** Starts `redis-server` on a free port. */
export async function startRedis(options: RedisOptions = {}): Promise<TestRedis> {
  const port = freePort();
  let child: Deno.ChildProcess | null = null;
  const start = async () => {
    if (child) return;
    const listen = options.tls
      ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        options.tls.cert,
        "--tls-key-file",
        options.tls.key,
        "--tls-auth-clients",
        "no",
      ]
      : ["--port", String(port)];
    const args = [
      ...listen,
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
      ...(options.password ? ["--requirepass", options.password] : []),
    ];
    child = new Deno.Command("redis-server", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const running = child;
    let exited = false;
    void running.status.then(() => void (exited = true));
    await until(`redis-server on port ${port}`, async () => {
      if (exited) throw new Error(`redis-server exited (port ${port} taken?)`);
      return await accepts(port);
    });
  };
  const stop = async () => {
    const running = child;
    if (!running) return;
    child = null;
    try {
      running.kill("SIGKILL");
    } catch { /* already gone */ }
    await running.status;
  };
  const signal = (name: Deno.Signal) => {
    if (!child) throw new Error("redis-server is not running");
    child.kill(name);
  };
  await start();
  return {
    url: `${options.tls ? "rediss" : "redis"}://127.0.0.1:${port}/0`,
    port,
    start,
    stop,
    pause: () => signal("SIGSTOP"),
    resume: () => signal("SIGCONT"),
    close: stop,
  };
}
