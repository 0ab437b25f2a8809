import assert from "node:assert/strict";
import { join } from "node:path";
import { type Config, parseConfig } from "../config/mod.ts";
import {
  type Argon2Params,
  AuthenticatorChain,
  type AuthResult,
  createAuthenticator,
  hashPassword,
  HashPool,
  type PasswordAuthenticator,
  type PasswordHasher,
} from "./mod.ts";

const CHEAP: Argon2Params = { memoryKib: 64, iterations: 1, parallelism: 1 };

async function withConfig(
  fn: (config: Config, dir: string) => Promise<void>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_auth_mod_" });
  try {
    const config = parseConfig({
      auth: {
        workers: 1,
        argon2: { memory_kib: 64, iterations: 1, parallelism: 1 },
        file: { users: join(dir, "users.txt"), users_dir: join(dir, "users") },
      },
      ...extra,
    });
    await fn(config, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A fixed-answer backend for the chain's own rules. */
function fixed(
  name: string,
  result: AuthResult | Error,
): PasswordAuthenticator & { calls: number } {
  return {
    name,
    calls: 0,
    verifyPassword() {
      this.calls++;
      return result instanceof Error ? Promise.reject(result) : Promise.resolve(result);
    },
    close: () => Promise.resolve(),
  };
}

const OK: AuthResult = { ok: true, email: "a@example.com", domain: "example.com", backend: "x" };
const INVALID: AuthResult = { ok: false, reason: "invalid_credentials" };
const TEMPORARY: AuthResult = { ok: false, reason: "temporary_failure", detail: "down" };
const LOCKED: AuthResult = { ok: false, reason: "account_disabled" };

Deno.test("createAuthenticator() builds a working file backend from the config", async () => {
  await withConfig(async (config) => {
    await Deno.mkdir(config.auth.file.users_dir);
    await Deno.writeTextFile(
      join(config.auth.file.users_dir, "example.com.txt"),
      `alice@example.com:${await hashPassword("pw1", CHEAP)}\n`,
    );
    const auth = createAuthenticator(config, { report: () => {} });
    try {
      assert.equal(auth.name, "file");
      assert.deepEqual(await auth.verifyPassword("alice@example.com", "pw1"), {
        ok: true,
        email: "alice@example.com",
        domain: "example.com",
        backend: "file",
      });
      const wrong = await auth.verifyPassword("alice@example.com", "pw2");
      assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
    } finally {
      await auth.close();
    }
  });
});

Deno.test("createAuthenticator() refuses users of disabled domains before hashing", async () => {
  await withConfig(async (config) => {
    await Deno.writeTextFile(
      config.auth.file.users,
      `bob@disabled.example:${await hashPassword("pw", CHEAP)}\n` +
        `carol@example.com:${await hashPassword("pw", CHEAP)}\n`,
    );
    const pool = new HashPool({ size: 1 });
    let calls = 0;
    const hasher: PasswordHasher = {
      verify: (...args) => (calls++, pool.verify(...args)),
      hash: (...args) => (calls++, pool.hash(...args)),
      close: () => pool.close(),
    };
    const auth = createAuthenticator(config, { hasher, report: () => {} });
    try {
      assert.deepEqual(await auth.verifyPassword("Bob@Disabled.Example", "pw"), {
        ok: false,
        reason: "domain_disabled",
        detail: "domain disabled.example is disabled",
      });
      assert.equal(calls, 0, "no hashing for a disabled domain");
      assert.equal((await auth.verifyPassword("carol@example.com", "pw")).ok, true);
      assert.equal(calls, 1);
    } finally {
      await auth.close();
    }
  }, { domains: { disabled: ["DISABLED.example."] } });
});

Deno.test("createAuthenticator() says clearly that LDAP is not available yet", async () => {
  await withConfig(async (config) => {
    assert.throws(
      () => createAuthenticator({ ...config, auth: { ...config.auth, backends: ["ldap"] } }),
      /LDAP backend not available yet/,
    );
    const ldap = fixed("ldap", OK);
    const auth = createAuthenticator(
      { ...config, auth: { ...config.auth, backends: ["ldap", "file"] } },
      { backends: { ldap: () => ldap }, report: () => {} },
    );
    try {
      assert.equal(auth.name, "ldap+file");
      assert.equal((await auth.verifyPassword("a@example.com", "pw")).ok, true);
      assert.equal(ldap.calls, 1);
    } finally {
      await auth.close();
    }
  });
});

Deno.test("AuthenticatorChain: first ok wins, temporary failures are remembered", async () => {
  const cases: [PasswordAuthenticator[], AuthResult["ok"], string | null][] = [
    [[fixed("a", INVALID), fixed("b", OK)], true, null],
    [[fixed("a", TEMPORARY), fixed("b", INVALID)], false, "temporary_failure"],
    [[fixed("a", INVALID), fixed("b", TEMPORARY)], false, "temporary_failure"],
    [[fixed("a", TEMPORARY), fixed("b", OK)], true, null],
    [[fixed("a", INVALID), fixed("b", INVALID)], false, "invalid_credentials"],
    [[fixed("a", new Error("socket closed")), fixed("b", INVALID)], false, "temporary_failure"],
    [[fixed("a", LOCKED), fixed("b", OK)], false, "account_disabled"],
  ];
  for (const [backends, ok, reason] of cases) {
    const chain = new AuthenticatorChain(backends);
    const result = await chain.verifyPassword("a@example.com", "pw");
    assert.equal(result.ok, ok, chain.name);
    if (!result.ok) assert.equal(result.reason, reason);
  }
  const stopped = fixed("b", OK);
  await new AuthenticatorChain([fixed("a", OK), stopped]).verifyPassword("a@example.com", "pw");
  assert.equal(stopped.calls, 0, "backends after a success are not asked");
});
