/**
 * Certificate reload on a running relay (real TLS): a new pair written over
 * `tls.cert`/`tls.key` is served to new handshakes while open sessions keep
 * theirs and finish their mail; a half-written or mismatched pair never
 * replaces a good one; SIGHUP reloads a `relay serve` process without
 * stopping it; TLS 1.2 by default (profile "intermediate") unless
 * `min_version = "1.3"` (probed with openssl; tls_profile_test.ts has the rest).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { generateDevCertificates } from "../src/tls/mod.ts";
import { RawClient } from "./support/raw_client.ts";
import { startTestRelay, type TestRelay } from "./support/relay.ts";
import { serveConfig, startServe } from "./support/serve_process.ts";
import { until } from "./support/until.ts";
import { freePort } from "./support/ports.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A certificate pair from a new CA, in its own folder; the CA's PEM. */
async function newPair(dir: string): Promise<{ cert: string; key: string; ca: string }> {
  const paths = await generateDevCertificates({ dir, hostnames: ["relay.test"] });
  return { cert: paths.cert, key: paths.key, ca: await Deno.readTextFile(paths.caCert) };
}

/** Whether an SMTPS client trusting only `caPem` gets the 220 greeting. */
async function smtpsGreets(port: number, caPem: string): Promise<boolean> {
  let client: RawClient | undefined;
  try {
    client = await RawClient.connect({ port, caPem, implicitTls: true });
    return (await client.reply()).code === 220;
  } catch {
    return false;
  } finally {
    client?.close();
  }
}

function authPlain(email: string, password: string): string {
  return btoa(`\0${email}\0${password}`);
}

/** Runs `fn` with the relay's log records collected in memory. */
async function withLogs(fn: (logs: LogRecord[]) => Promise<void>): Promise<void> {
  const logs: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => logs.push(record) },
    loggers: [
      { category: ["relay"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["memory"] },
    ],
  });
  try {
    await fn(logs);
  } finally {
    await reset();
  }
}

function rendered(record: LogRecord): string {
  return record.message.map((part) => typeof part === "string" ? part : String(part)).join("");
}

Deno.test("a replaced certificate is served to new handshakes; open sessions finish their mail", async () => {
  await withLogs(async (logs) => {
    const t = await startTestRelay();
    let old: RawClient | undefined;
    let plain: RawClient | undefined;
    try {
      const alice = t.users[0];
      const next = await newPair(join(t.dir, "next"));
      // An authenticated SMTPS session and a plain submission session, open across the reload.
      old = await RawClient.connect({ port: t.smtpsPort, caPem: t.caPem, implicitTls: true });
      assert.equal((await old.reply()).code, 220);
      assert.equal((await old.command("EHLO old.test")).code, 250);
      const auth = await old.command(`AUTH PLAIN ${authPlain(alice.email, alice.password)}`);
      assert.equal(auth.text, "235 2.7.0 Authentication successful");
      [plain] = await RawClient.open({ port: t.submissionPort, caPem: next.ca });
      assert.equal((await plain.command("EHLO plain.test")).code, 250);

      const before = t.relay.tls.info.fingerprintSha256;
      // Key first, then certificate: the moment in between is a mismatched pair.
      await Deno.copyFile(next.key, t.config.tls.key);
      await Deno.copyFile(next.cert, t.config.tls.cert);
      await until("the new certificate", () => t.relay.tls.info.fingerprintSha256 !== before);

      assert.equal(await smtpsGreets(t.smtpsPort, next.ca), true, "new CA trusted");
      assert.equal(await smtpsGreets(t.smtpsPort, t.caPem), false, "old CA refused");

      // STARTTLS on a connection opened before the reload: a new handshake, the new certificate.
      await plain.starttls();
      assert.equal((await plain.command("EHLO plain.test")).code, 250);

      // The session opened before the reload completes a transaction on its old TLS session.
      assert.equal((await old.command(`MAIL FROM:<${alice.email}>`)).code, 250);
      assert.equal((await old.command("RCPT TO:<bob@dest.org>")).code, 250);
      assert.equal((await old.command("DATA")).code, 354);
      const queued = await old.command("Subject: across a reload\r\n\r\nstill here\r\n.");
      assert.match(queued.text, /^250 2\.0\.0 Ok: queued as /);
      assert.equal((await old.command("QUIT")).code, 221);
      await t.waitForOutbox(1);

      const info = logs.find((r) => rendered(r).startsWith("TLS certificate reloaded"));
      assert.ok(info, logs.map(rendered).join("\n"));
      assert.match(rendered(info), /\(file change\): CN=relay\.test.*valid until \d{4}-/);
      assert.equal(info.properties.fingerprint, t.relay.tls.info.fingerprintSha256);
    } finally {
      old?.close();
      plain?.close();
      await t.close();
    }
  });
});

Deno.test("a half-written or mismatched pair does not replace the served certificate", async () => {
  await withLogs(async (logs) => {
    const t = await startTestRelay();
    try {
      const before = t.relay.tls.info.fingerprintSha256;
      const next = await newPair(join(t.dir, "next"));
      const errors = () => logs.filter((r) => r.level === "error").map(rendered);

      // Half a certificate (a copy caught in the middle).
      const pem = await Deno.readTextFile(next.cert);
      await Deno.writeTextFile(t.config.tls.cert, pem.slice(0, Math.floor(pem.length / 2)));
      await until("the reload error", () => errors().length > 0);
      assert.match(
        errors()[0],
        /^TLS certificate reload \(file change\) failed, still serving CN=relay\.test.*server\.crt holds no PEM certificate/,
      );
      assert.equal(t.relay.tls.info.fingerprintSha256, before);
      assert.equal(await smtpsGreets(t.smtpsPort, t.caPem), true, "the old certificate is served");

      // A whole certificate whose key is not there yet.
      await Deno.copyFile(next.cert, t.config.tls.cert);
      await until("the mismatch error", () => errors().length > 1);
      assert.match(errors()[1], /server\.key does not match the certificate in .*server\.crt/);
      assert.equal(t.relay.tls.info.fingerprintSha256, before);
      assert.equal(await smtpsGreets(t.smtpsPort, t.caPem), true, "the old certificate is served");
      assert.equal(await smtpsGreets(t.smtpsPort, next.ca), false);
      assert.ok(!logs.map(rendered).join("\n").includes("PRIVATE KEY"), "no key bytes in logs");
    } finally {
      await t.close();
    }
  });
});

async function openssl(args: string[]): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command("openssl", { args, stdin: "null" }).output();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

async function probe(t: TestRelay, version: "-tls1_2" | "-tls1_3", starttls = false) {
  const caFile = join(t.dir, "certs", "ca.crt");
  const port = starttls ? t.submissionPort : t.smtpsPort;
  return await openssl([
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    ...(starttls ? ["-starttls", "smtp"] : []),
    "-CAfile",
    caFile,
    "-verify_return_error",
    version,
  ]);
}

Deno.test('TLS 1.2 and 1.3 by default; min_version = "1.3" refuses a TLS 1.2 client (openssl)', async () => {
  const lenient = await startTestRelay();
  try {
    for (const starttls of [false, true]) {
      const tls12 = await probe(lenient, "-tls1_2", starttls);
      assert.equal(tls12.code, 0, tls12.output);
      assert.match(tls12.output, /New, TLSv1\.2, Cipher is ECDHE-/);
      const tls13 = await probe(lenient, "-tls1_3", starttls);
      assert.equal(tls13.code, 0, tls13.output);
      assert.match(tls13.output, /New, TLSv1\.3, Cipher is/);
    }
  } finally {
    await lenient.close();
  }
  const strict = await startTestRelay({ config: { tls: { min_version: "1.3" } } });
  try {
    for (const starttls of [false, true]) {
      const tls12 = await probe(strict, "-tls1_2", starttls);
      assert.notEqual(tls12.code, 0, tls12.output);
      assert.match(tls12.output, /alert protocol version|no protocols available|wrong version/i);
    }
  } finally {
    await strict.close();
  }
});

Deno.test("relay serve: SIGHUP reloads the certificate and the server keeps running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_sighup_" });
  const port = freePort();
  const configPath = join(dir, "relay.toml");
  await Deno.writeTextFile(
    configPath,
    serveConfig(dir, { listener: "smtps", port, sections: { tls: { reload: false } } }),
  );
  const relay = await startServe({
    args: ["-A", MAIN, "serve", "--config", configPath],
    cwd: ROOT,
  });
  const stderr = relay.output;
  try {
    const oldCa = await Deno.readTextFile(join(dir, "certs", "ca.crt"));
    assert.equal(await smtpsGreets(port, oldCa), true);

    const next = await newPair(join(dir, "next"));
    await Deno.copyFile(next.key, join(dir, "certs", "server.key"));
    await Deno.copyFile(next.cert, join(dir, "certs", "server.crt"));
    // reload = false: nothing watches the files (the start log says so), and the
    // replaced pair is served only after SIGHUP.
    await until("the TLS start line", () => /TLS certificate .*reloaded/.test(stderr()));
    assert.match(stderr(), /reloaded on SIGHUP/);
    assert.doesNotMatch(stderr(), /reloaded when the files change/);
    assert.equal(await smtpsGreets(port, oldCa), true);

    relay.kill("SIGHUP");
    await until("the new certificate", () => smtpsGreets(port, next.ca));
    assert.equal(relay.exited(), false, "SIGHUP does not stop the relay");
    assert.equal(await smtpsGreets(port, oldCa), false);
    // Log lines are written in batches (up to 50 ms later): wait for this one.
    await until("the reload log line", () => stderr().includes("TLS certificate reloaded"));
    const records = stderr().trim().split("\n").map((line) => JSON.parse(line));
    const reloaded = records.find((r) => r.message.startsWith("TLS certificate reloaded"));
    assert.equal(reloaded?.trigger, "SIGHUP", stderr());

    assert.equal((await relay.stop()).code, 0, stderr());
  } finally {
    await relay[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
