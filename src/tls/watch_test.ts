import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { generateDevCertificates, TlsContextProvider } from "./mod.ts";
import { startTlsReloader, type TlsReloader } from "./watch.ts";
import { echoOverTls, startEchoServer } from "./_testing.ts";
import { until } from "../../tests/support/until.ts";

interface Fixture {
  dir: string;
  /** The served files. */
  cert: string;
  key: string;
  /** PEM of the CA that signed the first pair. */
  oldCa: string;
  provider: TlsContextProvider;
  logs: LogRecord[];
  /** Log messages rendered with their values. */
  messages(): string[];
  /** A pair from a fresh CA, in its own folder (not watched). */
  newPair(name: string): Promise<{ cert: string; key: string; ca: string }>;
}

async function withFixture(
  fn: (f: Fixture) => Promise<void>,
  layout: { linked?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tls_watch_" });
  const logs: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => logs.push(record) },
    loggers: [
      { category: ["relay", "tls"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["memory"] },
    ],
  });
  try {
    const first = await generateDevCertificates({ dir: join(dir, "first") });
    const served = join(dir, "served");
    await Deno.mkdir(served);
    const cert = join(served, "server.crt");
    const key = join(served, "server.key");
    if (layout.linked) {
      // Kubernetes secret volume: server.crt -> ..data/server.crt, ..data -> a versioned folder.
      await Deno.mkdir(join(served, "..v1"));
      await Deno.copyFile(first.cert, join(served, "..v1", "server.crt"));
      await Deno.copyFile(first.key, join(served, "..v1", "server.key"));
      await Deno.symlink("..v1", join(served, "..data"));
      await Deno.symlink(join("..data", "server.crt"), cert);
      await Deno.symlink(join("..data", "server.key"), key);
    } else {
      await Deno.copyFile(first.cert, cert);
      await Deno.copyFile(first.key, key);
    }
    const provider = await TlsContextProvider.load({ cert, key });
    await fn({
      dir,
      cert,
      key,
      oldCa: await Deno.readTextFile(first.caCert),
      provider,
      logs,
      messages: () =>
        logs.map((r) =>
          r.message.map((part) => typeof part === "string" ? part : String(part)).join("")
        ),
      newPair: async (name) => {
        const paths = await generateDevCertificates({ dir: join(dir, name) });
        return { cert: paths.cert, key: paths.key, ca: await Deno.readTextFile(paths.caCert) };
      },
    });
  } finally {
    await reset();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether a client trusting only `ca` completes a handshake with the server. */
async function trusts(port: number, ca: string): Promise<boolean> {
  try {
    return await echoOverTls({ port, hostname: "localhost", caCerts: [ca] }) === "hello\n";
  } catch {
    return false;
  }
}

Deno.test("a new pair written over the watched files is served to new handshakes", async () => {
  await withFixture(async (f) => {
    const reloader = startTlsReloader(f.provider, { watch: true, debounceMs: 100 });
    const server = await startEchoServer({ context: () => f.provider.current() });
    try {
      const before = f.provider.info.fingerprintSha256;
      assert.equal(await trusts(server.port, f.oldCa), true);
      await server.nextOutcome();
      await reloader.ready;

      const next = await f.newPair("second");
      await Deno.copyFile(next.key, f.key);
      await Deno.copyFile(next.cert, f.cert);
      await until("the new certificate", () => f.provider.info.fingerprintSha256 !== before);

      assert.equal(await trusts(server.port, next.ca), true);
      await server.nextOutcome();
      assert.equal(await trusts(server.port, f.oldCa), false);
      await server.nextOutcome();
      await until("the log line", () => f.messages().some((m) => m.includes("reloaded")));
      const line = f.messages().find((m) => m.includes("reloaded"))!;
      assert.match(
        line,
        /^TLS certificate reloaded \(file change\): CN=localhost.*valid until 2\d{3}-/,
      );
    } finally {
      await server.close();
      await reloader.close();
    }
  });
});

Deno.test("a half-written or mismatched pair keeps the old certificate and logs an error", async () => {
  await withFixture(async (f) => {
    const reloader = startTlsReloader(f.provider, { watch: true, debounceMs: 100 });
    try {
      const before = f.provider.info.fingerprintSha256;
      await reloader.ready;
      const next = await f.newPair("second");
      const pem = await Deno.readTextFile(next.cert);
      // Half a certificate: no END line.
      await Deno.writeTextFile(f.cert, pem.slice(0, pem.length / 2));
      await until("an error", () => f.logs.some((r) => r.level === "error"));
      assert.equal(f.provider.info.fingerprintSha256, before);
      const error = f.messages().find((m) => m.includes("failed"))!;
      assert.match(
        error,
        /^TLS certificate reload \(file change\) failed, still serving CN=localhost/,
      );
      assert.match(error, /server\.crt holds no PEM certificate/);

      // The whole new certificate, but the old key: mismatched.
      f.logs.length = 0;
      await Deno.copyFile(next.cert, f.cert);
      await until("an error", () => f.logs.some((r) => r.level === "error"));
      assert.equal(f.provider.info.fingerprintSha256, before);
      assert.match(f.messages().join("\n"), /server\.key does not match the certificate/);
      assert.ok(!f.messages().join("\n").includes("BEGIN"), "no PEM in the log");

      // The key arrives: the pair is whole and served.
      await Deno.copyFile(next.key, f.key);
      await until("the new certificate", () => f.provider.info.fingerprintSha256 !== before);
    } finally {
      await reloader.close();
    }
  });
});

Deno.test("changes are debounced, and unrelated files in the folder cause no reload", async () => {
  await withFixture(async (f) => {
    const reloader = startTlsReloader(f.provider, { watch: true, debounceMs: 500 });
    try {
      await reloader.ready;
      await Deno.writeTextFile(join(f.dir, "served", "README"), "not a certificate\n");
      await Deno.writeTextFile(f.cert, await Deno.readTextFile(f.cert)); // same bytes
      await until("the debounced check", () => {
        const { checks, pending } = reloader.activity;
        return checks >= 1 && !pending;
      });
      assert.deepEqual(f.messages(), []);

      const next = await f.newPair("second");
      const certPem = await Deno.readTextFile(next.cert);
      // A slow writer: several writes within the quiet period, then the key.
      for (let i = 1; i <= 4; i++) {
        await Deno.writeTextFile(f.cert, certPem.slice(0, (certPem.length * i) / 4));
      }
      await Deno.copyFile(next.key, f.key);
      await until("a reload", () => f.messages().length > 0);
      // No check left to run: the writes within the quiet period made one reload, not several.
      await until("the watch to settle", () => !reloader.activity.pending);
      assert.equal(f.messages().length, 1, f.messages().join("\n"));
      assert.match(f.messages()[0], /^TLS certificate reloaded/);
    } finally {
      await reloader.close();
    }
  });
});

Deno.test("a Kubernetes-style symlink swap of the data folder is picked up", async () => {
  await withFixture(async (f) => {
    const reloader = startTlsReloader(f.provider, { watch: true, debounceMs: 100 });
    try {
      const before = f.provider.info.fingerprintSha256;
      await reloader.ready;
      const next = await f.newPair("second");
      const served = join(f.dir, "served");
      await Deno.mkdir(join(served, "..v2"));
      await Deno.copyFile(next.cert, join(served, "..v2", "server.crt"));
      await Deno.copyFile(next.key, join(served, "..v2", "server.key"));
      await Deno.symlink("..v2", join(served, "..data_tmp"));
      await Deno.rename(join(served, "..data_tmp"), join(served, "..data"));
      await until("the new certificate", () => f.provider.info.fingerprintSha256 !== before);
      assert.equal(f.provider.info.fingerprintSha256, fingerprintOf(next.cert));
    } finally {
      await reloader.close();
    }
  }, { linked: true });
});

Deno.test("without watch, files are read only on reload(); its outcome is returned", async () => {
  await withFixture(async (f) => {
    const reloader: TlsReloader = startTlsReloader(f.provider, { watch: false });
    try {
      const before = f.provider.info.fingerprintSha256;
      const next = await f.newPair("second");
      await Deno.copyFile(next.cert, f.cert);
      // Nothing watches the files, so nothing can have reloaded them.
      assert.equal(reloader.activity.watching, false);
      assert.equal(f.provider.info.fingerprintSha256, before);

      const failed = await reloader.reload("SIGHUP");
      assert.equal(failed.ok, false);
      assert.match(failed.ok ? "" : failed.error.message, /does not match/);
      assert.equal(failed.info.fingerprintSha256, before);

      await Deno.copyFile(next.key, f.key);
      const done = await reloader.reload("SIGHUP");
      assert.ok(done.ok && done.changed);
      assert.equal(done.info.fingerprintSha256, f.provider.info.fingerprintSha256);
      assert.notEqual(done.info.fingerprintSha256, before);
      const again = await reloader.reload("SIGHUP");
      assert.ok(again.ok && !again.changed);
      assert.match(f.messages().join("\n"), /reloaded \(SIGHUP\), unchanged/);
    } finally {
      await reloader.close();
    }
  });
});

Deno.test("a certificate close to expiry is reloaded with a warning", async () => {
  await withFixture(async (f) => {
    const notAfter = f.provider.info.notAfter.getTime();
    const reloader = startTlsReloader(f.provider, {
      watch: false,
      now: () => new Date(notAfter - 3 * 86_400_000),
    });
    try {
      assert.equal((await reloader.reload("SIGHUP")).ok, true);
      const warning = f.logs.find((r) => r.level === "warning");
      assert.ok(warning, f.messages().join("\n"));
    } finally {
      await reloader.close();
    }
  });
});

function fingerprintOf(path: string): string {
  return new X509Certificate(Deno.readTextFileSync(path)).fingerprint256;
}
