import assert from "node:assert/strict";
import { join } from "node:path";
import { runUserCommand, type UserCommandOptions } from "../src/cli/user.ts";
import { type Config, parseConfig } from "../src/config/mod.ts";
import { createAuthenticator } from "../src/auth/mod.ts";

interface Run {
  code: number;
  out: string[];
  err: string[];
}

/** Standard input holding `text`, delivered in small chunks like a pipe may. */
function stdinOf(text: string): UserCommandOptions["stdin"] {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, 3, bytes.length - offset);
      buffer.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

async function run(
  config: Config,
  args: string[],
  options: Omit<UserCommandOptions, "stdout" | "stderr"> = {},
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runUserCommand(args, config, {
    isTerminal: false,
    ...options,
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
  });
  return { code, out, err };
}

async function withConfig(fn: (config: Config, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_user_cli_" });
  try {
    const config = parseConfig({
      auth: {
        workers: 1,
        argon2: { memory_kib: 64, iterations: 1, parallelism: 1 },
        file: { users: join(dir, "users.txt"), users_dir: join(dir, "users") },
      },
    });
    await fn(config, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Logs in through the real authenticator built from the same config. */
async function login(config: Config, user: string, password: string): Promise<boolean> {
  const auth = createAuthenticator(config, { report: () => {} });
  try {
    return (await auth.verifyPassword(user, password)).ok;
  } finally {
    await auth.close();
  }
}

Deno.test("user add --password-stdin writes the domain file and the user can log in", async () => {
  await withConfig(async (config, dir) => {
    const added = await run(config, ["add", "Alice@Example.COM", "--password-stdin"], {
      stdin: stdinOf("correct horse battery\r\nsecond line ignored\n"),
    });
    const file = join(dir, "users", "example.com.txt");
    assert.deepEqual(added, { code: 0, out: [`added alice@example.com to ${file}`], err: [] });
    const text = await Deno.readTextFile(file);
    assert.match(text, /^alice@example\.com:\{ARGON2ID\}\$argon2id\$v=19\$m=64,t=1,p=1\$\S+\n$/);
    assert.ok(!text.includes("correct horse"));
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal(await login(config, "alice@example.com", "correct horse battery"), true);
    assert.equal(await login(config, "alice@example.com", "correct horse battery\r"), false);

    const again = await run(config, ["add", "alice@example.com", "--password-stdin"], {
      stdin: stdinOf("x\n"),
    });
    assert.equal(again.code, 1);
    assert.deepEqual(again.err, [`relay user: alice@example.com already exists in ${file}`]);
  });
});

Deno.test("user add --global, passwd, list and remove", async () => {
  await withConfig(async (config, dir) => {
    const global = join(dir, "users.txt");
    const add = await run(config, ["add", "bob@example.org", "--global", "--password-stdin"], {
      stdin: stdinOf("first-pw"),
    });
    assert.deepEqual(add.out, [`added bob@example.org to ${global}`]);
    await run(config, ["add", "carol@example.com", "--password-stdin"], {
      stdin: stdinOf("carol-pw\n"),
    });

    const passwd = await run(config, ["passwd", "BOB@example.org", "--password-stdin"], {
      stdin: stdinOf("second-pw\n"),
    });
    assert.deepEqual(passwd, {
      code: 0,
      out: [`changed the password of bob@example.org in ${global}`],
      err: [],
    });
    assert.equal(await login(config, "bob@example.org", "first-pw"), false);
    assert.equal(await login(config, "bob@example.org", "second-pw"), true);

    const list = await run(config, ["list"]);
    assert.deepEqual(list.out, [
      `bob@example.org\tARGON2ID\t${global}`,
      `carol@example.com\tARGON2ID\t${join(dir, "users", "example.com.txt")}`,
    ]);
    const one = await run(config, ["list", "--domain", "EXAMPLE.org"]);
    assert.deepEqual(one.out, [`bob@example.org\tARGON2ID\t${global}`]);

    const removed = await run(config, ["remove", "bob@example.org"]);
    assert.deepEqual(removed.out, [`removed bob@example.org from ${global}`]);
    assert.equal(await login(config, "bob@example.org", "second-pw"), false);
    const gone = await run(config, ["remove", "bob@example.org"]);
    assert.deepEqual(gone, {
      code: 1,
      out: [],
      err: ["relay user: no such user: bob@example.org"],
    });
    const missing = await run(config, ["passwd", "zed@example.org", "--password-stdin"], {
      stdin: stdinOf("pw\n"),
    });
    assert.deepEqual(missing.err, ["relay user: no such user: zed@example.org"]);
  });
});

Deno.test("user passwd replaces a refused plain-text line", async () => {
  await withConfig(async (config) => {
    await Deno.writeTextFile(config.auth.file.users, "# dev\ndev@example.com:{PLAIN}devpw\n");
    const list = await run(config, ["list"]);
    assert.deepEqual(list.out, []);
    assert.match(list.err[0], /^error: .*users\.txt:2: plain-text password refused/);
    const passwd = await run(config, ["passwd", "dev@example.com", "--password-stdin"], {
      stdin: stdinOf("hashed-now\n"),
    });
    assert.equal(passwd.code, 0);
    assert.match(
      await Deno.readTextFile(config.auth.file.users),
      /^# dev\ndev@example\.com:\{ARGON2ID\}\S+\n$/,
    );
    assert.equal(await login(config, "dev@example.com", "hashed-now"), true);
  });
});

Deno.test("user add asks twice on a terminal and refuses mismatches and empty passwords", async () => {
  await withConfig(async (config) => {
    const prompts: string[] = [];
    const answers = (...values: (string | null)[]) => (prompt: string) => {
      prompts.push(prompt);
      return Promise.resolve(values.shift() ?? null);
    };
    const mismatch = await run(config, ["add", "a@example.com"], {
      isTerminal: true,
      promptPassword: answers("one", "two"),
    });
    assert.deepEqual(mismatch, { code: 1, out: [], err: ["relay user: passwords do not match"] });
    assert.deepEqual(prompts, ["New password: ", "Repeat password: "]);
    const empty = await run(config, ["add", "a@example.com"], {
      isTerminal: true,
      promptPassword: answers(""),
    });
    assert.deepEqual(empty.err, ["relay user: empty password refused"]);
    const emptyStdin = await run(config, ["add", "a@example.com", "--password-stdin"], {
      stdin: stdinOf("\n"),
    });
    assert.deepEqual(emptyStdin.err, ["relay user: empty password refused"]);
    const noTty = await run(config, ["add", "a@example.com"]);
    assert.equal(noTty.code, 2);
    assert.match(noTty.err[0], /use --password-stdin/);
    assert.deepEqual(await run(config, ["list"]), { code: 0, out: [], err: ["no users"] });

    const ok = await run(config, ["add", "a@example.com"], {
      isTerminal: true,
      promptPassword: answers("tty-pw", "tty-pw"),
    });
    assert.equal(ok.code, 0);
    assert.equal(await login(config, "a@example.com", "tty-pw"), true);
  });
});

Deno.test("user: usage errors exit 2, LDAP and bad addresses exit 1", async () => {
  await withConfig(async (config) => {
    for (
      const args of [
        [],
        ["frobnicate"],
        ["add"],
        ["add", "a@example.com", "b@example.com"],
        ["add", "a@example.com", "--bogus"],
        ["remove", "a@example.com", "--global"],
        ["list", "--password-stdin"],
        ["list", "extra"],
      ]
    ) {
      const result = await run(config, args);
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.err.join("\n"), /usage: relay user add/, args.join(" "));
    }
    const ldap = await run(config, ["add", "a@example.com", "--ldap"]);
    assert.deepEqual(ldap, {
      code: 1,
      out: [],
      err: ["relay user: LDAP user management: not available yet"],
    });
    const bad = await run(config, ["add", "not-an-address", "--password-stdin"], {
      stdin: stdinOf("pw\n"),
    });
    assert.deepEqual(bad.err, ["relay user: not a valid email address: not-an-address"]);
    assert.equal(bad.code, 1);
    const help = await run(config, ["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.out[0], /^usage: relay user add/);
  });
});
