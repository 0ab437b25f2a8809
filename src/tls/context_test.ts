import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createServerContext,
  generateDevCertificates,
  loadTlsMaterial,
  TlsContextProvider,
  TlsMaterialError,
} from "./mod.ts";
import { echoOverTls, openssl, startEchoServer } from "./_testing.ts";

Deno.test("a generated chain serves TLS 1.3 to a Deno client for localhost and 127.0.0.1", async () => {
  const dir = await Deno.makeTempDir();
  const paths = await generateDevCertificates({ dir });
  const context = createServerContext(await loadTlsMaterial(paths), { minVersion: "1.3" });
  const server = await startEchoServer({ context: () => context });
  try {
    const caCerts = [await Deno.readTextFile(paths.caCert)];
    for (const hostname of ["localhost", "127.0.0.1"]) {
      const reply = await echoOverTls({
        port: server.port,
        hostname,
        caCerts,
        message: "ping\r\n",
      });
      assert.equal(reply, "ping\r\n");
      assert.deepEqual(await server.nextOutcome(), { ok: true, protocol: "TLSv1.3" });
    }
    // A name the certificate does not carry is refused by the client.
    await assert.rejects(
      echoOverTls({ port: server.port, hostname: "mail.example.org", caCerts }),
      /NotValidForName|not valid for/i,
    );
    assert.equal((await server.nextOutcome()).ok, false);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("min_version 1.3 refuses a TLS 1.2 client; 1.2 accepts it", async () => {
  const dir = await Deno.makeTempDir();
  const paths = await generateDevCertificates({ dir });
  const material = await loadTlsMaterial(paths);
  try {
    for (const minVersion of ["1.3", "1.2"] as const) {
      const context = createServerContext(material, { minVersion });
      const server = await startEchoServer({ context: () => context });
      try {
        const connect = ["s_client", "-connect", `127.0.0.1:${server.port}`, "-CAfile"];
        const tls12 = await openssl([...connect, paths.caCert, "-tls1_2", "-verify_return_error"]);
        const outcome = await server.nextOutcome();
        if (minVersion === "1.3") {
          assert.notEqual(tls12.code, 0, tls12.output);
          assert.equal(outcome.ok, false);
        } else {
          assert.equal(tls12.code, 0, tls12.output);
          assert.match(tls12.output, /Protocol\s*: TLSv1\.2/);
          assert.deepEqual(outcome, { ok: true, protocol: "TLSv1.2" });
        }
        const tls13 = await openssl([...connect, paths.caCert, "-tls1_3", "-verify_return_error"]);
        assert.equal(tls13.code, 0, tls13.output);
        assert.deepEqual(await server.nextOutcome(), { ok: true, protocol: "TLSv1.3" });
      } finally {
        await server.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTlsMaterial() names the file that is missing, garbage or mismatched", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = await generateDevCertificates({ dir });
    const other = await generateDevCertificates({ dir: join(dir, "other") });
    const missing = join(dir, "nope.key");

    const expectError = async (cert: string, key: string, path: string, message: RegExp) => {
      await assert.rejects(loadTlsMaterial({ cert, key }), (error: unknown) => {
        assert.ok(error instanceof TlsMaterialError);
        assert.equal(error.path, path);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /SECRET|MIG/);
        return true;
      });
    };
    await expectError(
      paths.cert,
      missing,
      missing,
      /^TLS private key file not found: .*nope\.key$/,
    );
    await expectError(
      join(dir, "nope.crt"),
      paths.key,
      join(dir, "nope.crt"),
      /TLS certificate file not found/,
    );

    const garbage = join(dir, "garbage.key");
    await Deno.writeTextFile(garbage, "SECRET garbage, not PEM\n");
    await expectError(paths.cert, garbage, garbage, /garbage\.key holds no PEM private key/);
    await expectError(garbage, paths.key, garbage, /garbage\.key holds no PEM certificate/);

    const broken = join(dir, "broken.key");
    await Deno.writeTextFile(
      broken,
      "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n",
    );
    await expectError(paths.cert, broken, broken, /broken\.key holds a malformed private key/);

    await expectError(paths.cert, other.key, other.key, /does not match the certificate in/);

    await expectError(paths.cert, dir, dir, /is a directory/);

    const material = await loadTlsMaterial(paths);
    assert.equal(material.cert, await Deno.readTextFile(paths.cert));
    assert.equal(material.key, await Deno.readTextFile(paths.key));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TlsContextProvider.load() generates when allowed and describes the certificate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cert = join(dir, "certs", "server.crt");
    const key = join(dir, "certs", "server.key");
    await assert.rejects(TlsContextProvider.load({ cert, key }), TlsMaterialError);

    const provider = await TlsContextProvider.load({
      cert,
      key,
      min_version: "1.3",
      generate_if_missing: true,
      hostnames: ["relay.test"],
    });
    assert.equal(provider.generated?.generated, true);
    assert.equal(provider.generated?.paths.caCert, join(dir, "certs", "ca.crt"));
    assert.equal(provider.minVersion, "1.3");
    assert.deepEqual(provider.info.subjectAltNames, [
      "DNS:localhost",
      "IP Address:127.0.0.1",
      "IP Address:::1",
      "DNS:relay.test",
    ]);
    assert.equal(provider.info.subject, "CN=relay.test, O=relay development");
    assert.match(
      provider.info.issuer,
      /^CN=relay development CA [0-9a-f]{8}, O=relay development$/,
    );
    assert.match(provider.info.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.ok(provider.info.notAfter > new Date());

    const again = await TlsContextProvider.load({ cert, key, generate_if_missing: true });
    assert.equal(again.generated, undefined);
    assert.equal(again.info.fingerprintSha256, provider.info.fingerprintSha256);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TlsContextProvider.reload() swaps the served certificate and keeps it on error", async () => {
  const dir = await Deno.makeTempDir();
  const first = await generateDevCertificates({ dir: join(dir, "a") });
  const second = await generateDevCertificates({ dir: join(dir, "b") });
  const cert = join(dir, "server.crt");
  const key = join(dir, "server.key");
  await Deno.copyFile(first.cert, cert);
  await Deno.copyFile(first.key, key);
  const provider = await TlsContextProvider.load({ cert, key, min_version: "1.3" });
  const server = await startEchoServer({ context: () => provider.current() });
  const firstCa = [await Deno.readTextFile(first.caCert)];
  const secondCa = [await Deno.readTextFile(second.caCert)];
  const hostname = "localhost";
  try {
    assert.equal(await echoOverTls({ port: server.port, hostname, caCerts: firstCa }), "hello\n");
    await server.nextOutcome();
    const before = provider.info;

    // A half-replaced pair (new key, old certificate) is refused; the old context keeps serving.
    await Deno.copyFile(second.key, key);
    await assert.rejects(provider.reload(), /does not match/);
    assert.equal(provider.info, before);
    assert.equal(await echoOverTls({ port: server.port, hostname, caCerts: firstCa }), "hello\n");
    await server.nextOutcome();

    await Deno.copyFile(second.cert, cert);
    await provider.reload();
    assert.notEqual(provider.info.fingerprintSha256, before.fingerprintSha256);
    assert.equal(await echoOverTls({ port: server.port, hostname, caCerts: secondCa }), "hello\n");
    await server.nextOutcome();
    // Clients that trust only the first CA no longer accept the new certificate.
    await assert.rejects(echoOverTls({ port: server.port, hostname, caCerts: firstCa }));
    assert.equal((await server.nextOutcome()).ok, false);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
