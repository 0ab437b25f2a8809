/**
 * The command line as an operator meets it: `--help` and `--version` never
 * start anything; `relay check` reports every problem `serve` would refuse,
 * with its key; `serve` names the key and address it cannot listen on.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { helpTopics, VERSION } from "../src/cli/help.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function relay(args: string[], cwd?: string): Promise<Run> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    cwd,
    stdin: "null",
  }).output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("--help for every command and subcommand exits 0 with its usage, reading no config and starting nothing", async () => {
  const topics = helpTopics();
  assert.ok(topics.length >= 20, JSON.stringify(topics));
  // A config that does not exist: an explicit --config that were read would fail.
  const missing = ["--config", "/nonexistent/relay.toml"];
  const runs = [
    { args: ["--help"], usage: "usage: relay <command>" },
    { args: ["-h"], usage: "usage: relay <command>" },
    { args: ["help", "queue", "retry"], usage: "usage: relay queue retry" },
    ...topics.map((topic) => ({
      args: [...topic, "--help", ...missing],
      usage: `usage: relay ${topic.join(" ")}`,
    })),
    { args: ["oauth", "login", "-h"], usage: "usage: relay oauth login" },
  ];
  for (let i = 0; i < runs.length; i += 4) {
    await Promise.all(
      runs.slice(i, i + 4).map(async ({ args, usage }) => {
        const result = await relay(args);
        assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
        assert.ok(result.stdout.startsWith(usage), `${args.join(" ")}:\n${result.stdout}`);
        assert.equal(result.stderr, "");
      }),
    );
  }
  // `serve --help` returned: a relay that had started would still be running.
});

Deno.test("--version prints the relay's and the runtime's versions", async () => {
  for (const flag of ["--version", "-V"]) {
    const result = await relay([flag]);
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout.trim(),
      `relay ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, typescript ${Deno.version.typescript})`,
    );
  }
});

Deno.test("relay check reports every problem serve would refuse, each with its key; serve refuses the same", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_check_" });
  try {
    const path = join(dir, "relay.toml");
    await Deno.writeTextFile(
      path,
      `[smtps]
listen = "127.0.0.1:99999"
[submission]
listen = "nosuchhost.invalid:8587"
[tls]
cert = "missing/server.crt"
key = "missing/server.key"
generate_if_missing = false
[relay]
url = "smtp://"
[relay.routes."company.com"]
url = "ftp://x"
`,
    );
    const expected = [
      "  smtps.listen: port out of range: expected 0 to 65535",
      "  tls.cert: TLS certificate file not found: missing/server.crt",
      "  relay.url: the URL names no host",
      "  relay.routes.company.com.url: unsupported scheme ftp: (use smtp:, smtps: or file:)",
      '  submission.listen: cannot resolve host "nosuchhost.invalid" (ENOTFOUND)',
    ];
    const check = await relay(["check", "--config", path], dir);
    assert.equal(check.code, 1);
    assert.deepEqual(check.stderr.trimEnd().split("\n"), [`${path}: 5 error(s)`, ...expected]);

    const serve = await relay(["serve", "--config", path], dir);
    assert.equal(serve.code, 1);
    assert.deepEqual(serve.stderr.trimEnd().split("\n"), [
      `invalid configuration in ${path}:`,
      ...expected,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a TOML syntax error names its line and column", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_check_" });
  try {
    const path = join(dir, "relay.toml");
    await Deno.writeTextFile(path, '[server]\nhostname = "mx"\n\n[limits]\nmax_recipients = = 5\n');
    const check = await relay(["check", "--config", path]);
    assert.equal(check.code, 1);
    assert.deepEqual(check.stderr.trimEnd().split("\n"), [
      `${path}: 1 error(s)`,
      "  (file): TOML syntax error at line 5, column 18: invalid value",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve names the key and the address it cannot listen on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_listen_" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    for (const section of ["submission", "oauth", "admin"] as const) {
      const listen = (s: string) => `"127.0.0.1:${s === section ? port : 0}"`;
      const path = join(dir, `${section}.toml`);
      await Deno.writeTextFile(
        path,
        `[smtps]\nlisten = ${listen("smtps")}\n[submission]\nlisten = ${listen("submission")}\n` +
          `[oauth]\nlisten = ${listen("oauth")}\n[admin]\nlisten = ${listen("admin")}\n` +
          `[auth.argon2]\nmemory_kib = 64\niterations = 1\n`,
      );
      const serve = await relay(["serve", "--config", path], dir);
      assert.equal(serve.code, 1, serve.stderr);
      assert.match(
        serve.stderr,
        new RegExp(
          `relay: ${section}\\.listen = "127\\.0\\.0\\.1:${port}": cannot listen: address already in use`,
        ),
      );
    }
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});
