/**
 * The configuration contract: `relay check` names every bad key with its
 * file, the example file documents valid keys, and an empty file is a
 * working local relay.
 */
import assert from "node:assert/strict";
import { runCheck } from "../src/cli/check.ts";
import { ConfigError, loadConfig, parseConfigText } from "../src/config/mod.ts";

async function check(path: string): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCheck(path, { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out, err };
}

Deno.test("config/relay.example.toml is valid and spells out the embedded defaults", async () => {
  const result = await check("config/relay.example.toml");
  assert.equal(result.code, 0, result.err.join("\n"));
  const { config } = await loadConfig("config/relay.example.toml");
  const defaults = parseConfigText("", "empty.toml");
  assert.deepEqual(config, defaults);
});

Deno.test("relay check lists every error with its key and the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/bad.toml`;
    await Deno.writeTextFile(
      path,
      `[limits]\nmax_recipients = 0\nfoo = 1\n[tls]\nmin_version = "1.1"\n[relay]\npool_size = "four"\n[bogus]\n`,
    );
    const result = await check(path);
    assert.equal(result.code, 1);
    assert.equal(result.err[0], `${path}: 5 error(s)`);
    const keys = result.err.slice(1).map((line) => line.trim().split(":")[0]).sort();
    assert.deepEqual(keys, [
      "bogus",
      "limits.foo",
      "limits.max_recipients",
      "relay.pool_size",
      "tls.min_version",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing explicit --config file is an error; the default path may be missing", async () => {
  await assert.rejects(() => loadConfig("/nonexistent/relay.toml"), (error) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.issues[0].message, "file not found");
    return true;
  });
  const syntax = await Deno.makeTempFile({ suffix: ".toml" });
  try {
    await Deno.writeTextFile(syntax, "[limits\n");
    assert.throws(() => parseConfigText("[limits\n", syntax), /TOML syntax/);
  } finally {
    await Deno.remove(syntax);
  }
});

Deno.test("limits: deadline keys and trusted_networks are validated with the key named", () => {
  const config = parseConfigText('[limits]\ntrusted_networks = ["10.0.0.0/8", "::1"]\n', "t.toml");
  assert.deepEqual(config.limits.trusted_networks, ["10.0.0.0/8", "::1"]);
  assert.equal(config.limits.data_min_bytes_per_second, 500);
  assert.equal(config.limits.session_max_seconds, 3600);
  assert.throws(
    () => parseConfigText('[limits]\ntrusted_networks = ["office"]\n', "t.toml"),
    /limits\.trusted_networks/,
  );
  assert.throws(
    () => parseConfigText("[limits]\ndata_min_bytes_per_second = -1\n", "t.toml"),
    /limits\.data_min_bytes_per_second/,
  );
});
