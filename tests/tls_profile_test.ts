/**
 * TLS profiles as a client sees them, probed with openssl and testssl.sh:
 * `intermediate` (the default) offers TLS 1.2 with ECDHE + AEAD ciphers only
 * and TLS 1.3; `modern` offers TLS 1.3 only. Deno's node:tls ignores a
 * `ciphers` option, so these probes are what proves the cipher list.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestRelay, type TestRelay } from "./support/relay.ts";

const decoder = new TextDecoder();

interface Handshake {
  /** e.g. `TLSv1.2`; null when refused. */
  protocol: string | null;
  cipher: string | null;
  output: string;
}

/** One openssl s_client handshake (SMTPS, or STARTTLS on submission). */
async function handshake(port: number, args: string[], starttls = false): Promise<Handshake> {
  const result = await new Deno.Command("openssl", {
    args: [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      ...(starttls ? ["-starttls", "smtp"] : []),
      ...args,
    ],
    stdin: "null",
  }).output();
  const output = decoder.decode(result.stdout) + decoder.decode(result.stderr);
  const match = /New, (TLSv[\d.]+), Cipher is (\S+)/.exec(output);
  return match && match[2] !== "(NONE)"
    ? { protocol: match[1], cipher: match[2], output }
    : { protocol: null, cipher: null, output };
}

/**
 * Every TLS 1.2 cipher suite this openssl knows that a server with an RSA
 * certificate could negotiate (anonymous and NULL ones included; ECDSA, DSS,
 * PSK and SRP ones need other credentials), weak ones included.
 */
async function allTls12Ciphers(): Promise<string[]> {
  const result = await new Deno.Command("openssl", {
    args: ["ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:!aECDSA:!aDSS:!PSK:!SRP:@SECLEVEL=0"],
  }).output();
  return decoder.decode(result.stdout).trim().split(":").filter((name) => !name.startsWith("TLS_"));
}

/** Replaces the served pair by an RSA-2048 one (RSA key exchange is only possible with it). */
async function serveRsaCertificate(t: TestRelay): Promise<void> {
  const result = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=relay.test",
      "-keyout",
      t.config.tls.key,
      "-out",
      t.config.tls.cert,
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(result.code, 0);
  assert.equal((await t.relay.reloadTls("test")).ok, true);
}

const LEGACY = ["-cipher", "ALL:@SECLEVEL=0"];

Deno.test("intermediate (default): TLS 1.0/1.1 refused, 1.2 only with ECDHE + AEAD, 1.3 accepted, on both listeners", async () => {
  const t = await startTestRelay();
  try {
    assert.equal(t.config.tls.profile, "intermediate");
    await serveRsaCertificate(t);
    for (const [port, starttls] of [[t.smtpsPort, false], [t.submissionPort, true]] as const) {
      for (const old of ["-tls1", "-tls1_1"]) {
        const refused = await handshake(port, [old, ...LEGACY], starttls);
        assert.equal(refused.protocol, null, refused.output);
      }
      for (
        const cipher of [
          "ECDHE-RSA-AES128-GCM-SHA256",
          "ECDHE-RSA-AES256-GCM-SHA384",
          "ECDHE-RSA-CHACHA20-POLY1305",
        ]
      ) {
        const ok = await handshake(port, ["-tls1_2", "-cipher", cipher], starttls);
        assert.deepEqual([ok.protocol, ok.cipher], ["TLSv1.2", cipher], ok.output);
      }
      for (
        const weak of [
          "ECDHE-RSA-AES128-SHA256", // CBC
          "ECDHE-RSA-AES256-SHA", // CBC, SHA-1
          "AES128-GCM-SHA256", // RSA key exchange, no forward secrecy
          "DHE-RSA-AES128-GCM-SHA256", // finite-field DH
          "DES-CBC3-SHA", // 3DES
        ]
      ) {
        const refused = await handshake(
          port,
          ["-tls1_2", "-cipher", `${weak}:@SECLEVEL=0`],
          starttls,
        );
        assert.equal(refused.protocol, null, `${weak} accepted:\n${refused.output}`);
      }
      const tls13 = await handshake(port, ["-tls1_3"], starttls);
      assert.equal(tls13.protocol, "TLSv1.3", tls13.output);
    }

    // Every TLS 1.2 suite usable with this certificate, one handshake each: exactly the three
    // ECDHE + AEAD ones pass.
    const accepted: string[] = [];
    const ciphers = await allTls12Ciphers();
    assert.ok(ciphers.length > 40, ciphers.join(":"));
    for (let i = 0; i < ciphers.length; i += 8) {
      const batch = ciphers.slice(i, i + 8);
      const results = await Promise.all(
        batch.map((c) => handshake(t.smtpsPort, ["-tls1_2", "-cipher", `${c}:@SECLEVEL=0`])),
      );
      results.forEach((r, j) => r.protocol && accepted.push(batch[j]));
    }
    assert.deepEqual(accepted.sort(), [
      "ECDHE-RSA-AES128-GCM-SHA256",
      "ECDHE-RSA-AES256-GCM-SHA384",
      "ECDHE-RSA-CHACHA20-POLY1305",
    ]);
  } finally {
    await t.close();
  }
});

Deno.test('profile = "modern" refuses TLS 1.2 on both listeners; min_version = "1.2" overrides it', async () => {
  const modern = await startTestRelay({ config: { tls: { profile: "modern" } } });
  try {
    for (
      const [port, starttls] of [[modern.smtpsPort, false], [modern.submissionPort, true]] as const
    ) {
      const tls12 = await handshake(port, ["-tls1_2"], starttls);
      assert.equal(tls12.protocol, null, tls12.output);
      assert.match(tls12.output, /alert protocol version|no protocols available|wrong version/i);
      const tls13 = await handshake(port, ["-tls1_3"], starttls);
      assert.equal(tls13.protocol, "TLSv1.3", tls13.output);
    }
  } finally {
    await modern.close();
  }
  const overridden = await startTestRelay({
    config: { tls: { profile: "modern", min_version: "1.2" } },
  });
  try {
    const tls12 = await handshake(overridden.smtpsPort, ["-tls1_2"]);
    assert.equal(tls12.protocol, "TLSv1.2", tls12.output);
  } finally {
    await overridden.close();
  }
});

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

/** testssl.sh's protocol, cipher-category and forward-secrecy checks; its JSON findings. */
async function testssl(port: number, dir: string, checks: string[]): Promise<Finding[]> {
  const json = join(dir, `testssl-${port}.json`);
  const args = ["--quiet", "--color", "0", "--warnings", "off", ...checks];
  const result = await new Deno.Command("testssl", {
    args: [...args, "--jsonfile", json, `127.0.0.1:${port}`],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error) => {
    throw new Error(`testssl.sh is not installed (apt-get install testssl.sh): ${error}`);
  });
  assert.equal(result.code, 0, decoder.decode(result.stderr));
  return JSON.parse(await Deno.readTextFile(json));
}

Deno.test("testssl.sh finds nothing to warn about in either profile", async () => {
  // Both scans at once: testssl.sh spends most of its time waiting.
  await Promise.all((["intermediate", "modern"] as const).map(async (profile) => {
    const t = await startTestRelay({ config: { tls: { profile } } });
    try {
      // Protocols everywhere; cipher categories and forward secrecy where TLS 1.2 is offered.
      const checks = profile === "modern" ? ["-p"] : ["-p", "-s", "-f"];
      const findings = await testssl(t.smtpsPort, t.dir, checks);
      const byId = new Map(findings.map((f) => [f.id, f]));
      // engine_problem: the local openssl has no GOST engine, nothing about the server.
      const bad = findings.filter((f) =>
        !["OK", "INFO", "DEBUG"].includes(f.severity) && f.id !== "engine_problem"
      );
      assert.deepEqual(bad, [], `${profile}: ${JSON.stringify(bad)}`);
      assert.equal(byId.get("TLS1")?.finding, "not offered");
      assert.equal(byId.get("TLS1_1")?.finding, "not offered");
      assert.match(byId.get("TLS1_3")?.finding ?? "", /^offered/);
      assert.equal(
        byId.get("TLS1_2")?.finding,
        profile === "modern" ? "not offered" : "offered",
      );
      if (profile === "intermediate") {
        assert.equal(byId.get("cipherlist_AVERAGE")?.finding, "not offered"); // CBC
        assert.equal(byId.get("cipherlist_3DES_IDEA")?.finding, "not offered");
        assert.equal(byId.get("PFS")?.finding, "offered");
      }
    } finally {
      await t.close();
    }
  }));
});
