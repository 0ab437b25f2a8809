import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { runCertsCommand } from "./certs.ts";

async function run(args: string[], config: ReturnType<typeof parseConfig>, now?: Date) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCertsCommand(args, config, {
    stdout: (line) => stdout.push(line),
    stderr: (line) => stderr.push(line),
    now,
  });
  return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") };
}

Deno.test("certs generate writes tls.cert/tls.key and refuses to overwrite without --force", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cert = join(dir, "certs", "server.crt");
    const key = join(dir, "certs", "server.key");
    const config = parseConfig({ server: { hostname: "mx.example.com" }, tls: { cert, key } });

    const first = await run(
      ["generate", "--hostname", "relay.test", "--hostname", "10.1.2.3"],
      config,
    );
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(`Created development CA ${join(dir, "certs", "ca.crt")}`),
    );
    assert.match(
      first.stdout,
      /Names: +DNS:localhost, IP Address:127\.0\.0\.1, IP Address:::1, DNS:mx\.example\.com, DNS:relay\.test, IP Address:10\.1\.2\.3/,
    );
    const pem = await Deno.readTextFile(cert);
    assert.ok(new X509Certificate(pem).checkPrivateKey(
      createPrivateKey(await Deno.readTextFile(key)),
    ));

    const refused = await run(["generate"], config);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /server\.crt already exists; use --force to replace it/);
    assert.equal(await Deno.readTextFile(cert), pem);

    const forced = await run(["generate", "--force"], config);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /Reused development CA/);
    assert.notEqual(await Deno.readTextFile(cert), pem);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("certs generate --dir writes server.crt there and says the config points elsewhere", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = parseConfig({ tls: { cert: join(dir, "a.crt"), key: join(dir, "a.key") } });
    const other = join(dir, "other");
    const result = await run(["generate", "--dir", other], config);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await Deno.stat(join(other, "server.crt"))).isFile);
    assert.ok((await Deno.stat(join(other, "ca.key"))).isFile);
    assert.match(result.stdout, /Note: the configuration serves tls\.cert = /);
    await assert.rejects(Deno.stat(join(dir, "a.crt")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("certs show prints subject, names and expiry; fails clearly without a certificate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cert = join(dir, "server.crt");
    const key = join(dir, "server.key");
    const config = parseConfig({ tls: { cert, key } });

    const missing = await run(["show"], config);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /TLS certificate file not found: .*server\.crt/);

    const now = new Date("2031-03-01T00:00:00Z");
    assert.equal((await run(["generate", "--hostname", "relay.test"], config, now)).code, 0);
    const shown = await run(["show"], config, now);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Subject: +CN=relay\.test, O=relay development/);
    assert.match(shown.stdout, /Names: +DNS:localhost, .*DNS:relay\.test/);
    assert.match(shown.stdout, /Expires: +2032-03-31T23:55:00\.000Z \(396 days left\)/);
    assert.match(shown.stdout, /Key: +.*server\.key \(matches\)/);

    const later = await run(["show"], config, new Date("2034-01-01T00:00:00Z"));
    assert.equal(later.code, 1);
    assert.match(later.stdout, /\(EXPIRED\)/);

    const otherMissing = await run(["show", "--cert", join(dir, "x.crt")], config);
    assert.equal(otherMissing.code, 1);
    assert.match(otherMissing.stderr, /certificate file not found: .*x\.crt/);

    assert.equal((await run(["bogus"], config)).code, 2);
    const badFlag = await run(["generate", "--nope"], config);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Usage:/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
