import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { ensureDevCertificates, generateDevCertificates, subjectAltNames } from "./mod.ts";
import { openssl } from "./_testing.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

async function readCert(path: string): Promise<X509Certificate> {
  return new X509Certificate(await Deno.readTextFile(path));
}

Deno.test("generateDevCertificates() writes a CA and a server certificate openssl verifies", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const now = new Date("2030-01-15T12:00:00Z");
    const certsDir = join(dir, "certs");
    const paths = await generateDevCertificates({
      dir: certsDir,
      hostnames: ["Mail.Example.com", "192.0.2.7", "[2001:db8::1]"],
      now,
    });
    assert.deepEqual(paths, {
      dir: certsDir,
      caCert: join(certsDir, "ca.crt"),
      caKey: join(certsDir, "ca.key"),
      cert: join(certsDir, "server.crt"),
      key: join(certsDir, "server.key"),
      caGenerated: true,
    });

    // -attime: the chain is valid at the injected clock, not today.
    const at = String(Math.floor(now.getTime() / 1000) + 60);
    const verified = await openssl([
      "verify",
      "-attime",
      at,
      "-purpose",
      "sslserver",
      "-CAfile",
      paths.caCert,
      paths.cert,
    ]);
    assert.equal(verified.code, 0, verified.output);
    assert.match(verified.output, /server\.crt: OK/);

    const ca = await readCert(paths.caCert);
    const server = await readCert(paths.cert);
    assert.equal(ca.ca, true);
    assert.equal(server.ca, false);
    assert.ok(server.checkIssued(ca));
    assert.equal(
      server.subjectAltName,
      [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:::1",
        "DNS:mail.example.com",
        "IP Address:192.0.2.7",
        "IP Address:2001:db8::1",
      ].join(", "),
    );
    assert.equal(server.publicKey.asymmetricKeyType, "ec");
    assert.equal(server.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    // Apple's limit counts from notBefore, backdate included: at most 397 days in all.
    assert.equal(server.validToDate.getTime() - server.validFromDate.getTime(), 397 * DAY_MS);
    assert.ok(server.validFromDate.getTime() <= now.getTime());
    const caYears = (ca.validToDate.getTime() - now.getTime()) / (365 * DAY_MS);
    assert.ok(caYears > 9.9 && caYears < 10.1, `CA valid ${caYears} years`);

    const text = await openssl(["x509", "-in", paths.cert, "-noout", "-text"]);
    assert.match(text.output, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text.output, /Key Usage: critical\s+Digital Signature\n/);
    assert.match(text.output, /Extended Key Usage:\s+TLS Web Server Authentication/);
    const caText = await openssl(["x509", "-in", paths.caCert, "-noout", "-text"]);
    assert.match(caText.output, /Basic Constraints: critical\s+CA:TRUE/);
    assert.match(caText.output, /Certificate Sign/);

    for (const key of [paths.key, paths.caKey]) {
      assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600, key);
      assert.match(await Deno.readTextFile(key), /^-----BEGIN PRIVATE KEY-----\n/);
    }
    for (const cert of [paths.cert, paths.caCert]) {
      assert.equal((await Deno.stat(cert)).mode! & 0o777, 0o644, cert);
    }
    assert.deepEqual((await Array.fromAsync(Deno.readDir(certsDir))).map((e) => e.name).sort(), [
      "ca.crt",
      "ca.key",
      "server.crt",
      "server.key",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generateDevCertificates() reuses an existing CA for a new server certificate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await generateDevCertificates({ dir });
    const caPem = await Deno.readTextFile(first.caCert);
    const caKeyPem = await Deno.readTextFile(first.caKey);
    const firstServer = await readCert(first.cert);

    const second = await generateDevCertificates({ dir, hostnames: ["relay.test"] });
    assert.equal(second.caGenerated, false);
    assert.equal(await Deno.readTextFile(second.caCert), caPem);
    assert.equal(await Deno.readTextFile(second.caKey), caKeyPem);
    const secondServer = await readCert(second.cert);
    assert.notEqual(secondServer.serialNumber, firstServer.serialNumber);
    assert.notEqual(secondServer.fingerprint256, firstServer.fingerprint256);
    assert.match(secondServer.subjectAltName ?? "", /DNS:relay\.test/);

    const verified = await openssl(["verify", "-CAfile", first.caCert, second.cert]);
    assert.equal(verified.code, 0, verified.output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generateDevCertificates() refuses a half-present CA and bad host names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = await generateDevCertificates({ dir });
    await Deno.remove(paths.caKey);
    await assert.rejects(
      generateDevCertificates({ dir }),
      new RegExp(`development CA is incomplete: ${paths.caKey} is missing`),
    );
    // Garbage in place of the CA key: a clear error that names the file, not its bytes.
    await Deno.writeTextFile(paths.caKey, "not a key SECRETBYTES");
    await assert.rejects(generateDevCertificates({ dir }), (error: Error) => {
      assert.match(error.message, new RegExp(`cannot read development CA key ${paths.caKey}`));
      assert.doesNotMatch(error.message, /SECRETBYTES/);
      return true;
    });
    // The key of another CA: caught before any certificate is written.
    const other = await generateDevCertificates({ dir: join(dir, "other") });
    await Deno.copyFile(other.caKey, paths.caKey);
    const before = await Deno.readTextFile(paths.cert);
    await assert.rejects(generateDevCertificates({ dir }), /does not match ca\.crt/);
    assert.equal(await Deno.readTextFile(paths.cert), before);

    await assert.rejects(
      generateDevCertificates({ dir: join(dir, "x"), hostnames: ["bad host"] }),
      /invalid hostname for a certificate: "bad host"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureDevCertificates() generates only when the cert or key is missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cert = join(dir, "tls", "relay.pem");
    const key = join(dir, "tls", "relay-key.pem");
    const created = await ensureDevCertificates({ cert, key });
    assert.equal(created.generated, true);
    assert.equal(created.paths.cert, cert);
    assert.equal(created.paths.key, key);
    assert.equal(created.paths.caCert, join(dir, "tls", "ca.crt"));
    const certPem = await Deno.readTextFile(cert);

    const again = await ensureDevCertificates({ cert, key });
    assert.equal(again.generated, false);
    assert.equal(await Deno.readTextFile(cert), certPem);

    await Deno.remove(key);
    const regenerated = await ensureDevCertificates({ cert, key });
    assert.equal(regenerated.generated, true);
    assert.equal(regenerated.paths.caGenerated, false);
    assert.notEqual(await Deno.readTextFile(cert), certPem);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("subjectAltNames() always includes the loopback names, once each", () => {
  assert.deepEqual(subjectAltNames(["LOCALHOST", "::1", "*.example.com", "example.com."]), [
    { type: "dns", value: "localhost" },
    { type: "ip", value: "127.0.0.1" },
    { type: "ip", value: "::1" },
    { type: "dns", value: "*.example.com" },
    { type: "dns", value: "example.com" },
  ]);
  assert.throws(() => subjectAltNames(["a..b"]), /invalid hostname/);
  assert.throws(() => subjectAltNames(["foo.*.com"]), /invalid hostname/);
});
