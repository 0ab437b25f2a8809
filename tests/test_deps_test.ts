/**
 * scripts/test_deps.sh, which `deno task test` runs first: silent and fast
 * when every package is there; as root it installs what is missing (postfix
 * preseeded, daemons stopped); otherwise it stops with the command to run.
 * apt-get, dpkg-query, id and friends are stand-ins on PATH that record
 * their calls, so no test touches the machine's packages.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const SCRIPT = new URL("../scripts/test_deps.sh", import.meta.url).pathname;
const decoder = new TextDecoder();

const SHIMS: Record<string, string> = {
  // Reports every package asked about as installed, except those in $MISSING.
  "dpkg-query": `for p in "$@"; do case "$p" in -*) continue;; esac
  case " $MISSING " in *" $p "*) ;; *) echo "$p ii ";; esac; done`,
  id: 'echo "$FAKE_UID"',
  "apt-get": 'echo "apt-get $*" >> "$LOG"',
  "debconf-set-selections": 'echo "debconf-set-selections $(cat)" >> "$LOG"',
  service: 'echo "service $*" >> "$LOG"',
};

async function run(env: { missing: string; uid: string }) {
  const dir = await Deno.makeTempDir({ prefix: "relay_deps_" });
  try {
    for (const [name, body] of Object.entries(SHIMS)) {
      await Deno.writeTextFile(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }
    const log = join(dir, "calls.log");
    await Deno.writeTextFile(log, "");
    const started = performance.now();
    const result = await new Deno.Command("bash", {
      args: [SCRIPT],
      env: { PATH: `${dir}:/usr/bin:/bin`, MISSING: env.missing, FAKE_UID: env.uid, LOG: log },
      clearEnv: true,
    }).output();
    return {
      code: result.code,
      stdout: decoder.decode(result.stdout),
      stderr: decoder.decode(result.stderr),
      calls: (await Deno.readTextFile(log)).trimEnd().split("\n").filter((l) => l !== ""),
      ms: performance.now() - started,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("everything installed: exits 0 at once, prints nothing, calls no apt", async () => {
  const result = await run({ missing: "", uid: "0" });
  assert.deepEqual([result.code, result.stdout, result.stderr, result.calls], [0, "", "", []]);
  assert.ok(result.ms < 2000, `${result.ms} ms`);
});

Deno.test("missing packages, not root: stops with the exact command and installs nothing", async () => {
  const result = await run({ missing: "haproxy testssl.sh", uid: "1000" });
  assert.equal(result.code, 1);
  assert.deepEqual(result.calls, []);
  assert.equal(result.stdout, "");
  assert.deepEqual(result.stderr.trimEnd().split("\n"), [
    "The tests need these Debian packages, not installed here: haproxy testssl.sh",
    "Install them (as root), then run the tests again:",
    `  sudo sh -c 'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy testssl.sh && for s in slapd haproxy redis-server; do service $s stop; done'`,
  ]);
});

Deno.test("missing packages as root: one line saying so, postfix preseeded, install, daemons stopped", async () => {
  const result = await run({ missing: "postfix redis-server", uid: "0" });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout,
    "test deps: installing postfix redis-server (Debian packages the tests need; once)\n",
  );
  assert.equal(result.stderr, "");
  assert.deepEqual(result.calls, [
    "debconf-set-selections postfix postfix/main_mailer_type select No configuration",
    "apt-get update -qq",
    "apt-get install -y -qq --no-install-recommends postfix redis-server",
    "service slapd stop",
    "service haproxy stop",
    "service redis-server stop",
  ]);
});

Deno.test("on this machine (the suite is running, so they are installed) it takes well under a second", async () => {
  const started = performance.now();
  const result = await new Deno.Command("bash", { args: [SCRIPT] }).output();
  assert.equal(result.code, 0, decoder.decode(result.stderr));
  assert.equal(decoder.decode(result.stdout), "");
  assert.ok(performance.now() - started < 1000);
});
