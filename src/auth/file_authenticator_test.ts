import assert from "node:assert/strict";
import { join } from "node:path";
import { CredentialCache } from "./credential_cache.ts";
import { FileAuthenticator } from "./file_authenticator.ts";
import { HashPool, type PasswordHasher } from "./hash_pool.ts";
import { type Argon2Params, hashPassword } from "./password_hash.ts";
import { UserStore } from "./user_file.ts";

const CHEAP: Argon2Params = { memoryKib: 64, iterations: 1, parallelism: 1 };

/** A real pool that records what it was asked to do. */
class CountingHasher implements PasswordHasher {
  readonly verified: string[] = [];
  hashed = 0;
  readonly #inner = new HashPool({ size: 1 });

  verify(password: string, stored: string, allowPlaintext: boolean): Promise<boolean> {
    this.verified.push(stored);
    return this.#inner.verify(password, stored, allowPlaintext);
  }

  hash(password: string, params: Argon2Params): Promise<string> {
    this.hashed++;
    return this.#inner.hash(password, params);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

interface Fixture {
  auth: FileAuthenticator;
  hasher: CountingHasher;
  usersFile: string;
  time: { now: number };
}

async function withAuthenticator(
  fn: (fixture: Fixture) => Promise<void>,
  options: { allowPlaintext?: boolean; rehashOnLogin?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_file_auth_" });
  const hasher = new CountingHasher();
  const time = { now: 1_000_000 };
  const usersFile = join(dir, "users.txt");
  const auth = new FileAuthenticator({
    store: new UserStore({
      usersFile,
      usersDir: join(dir, "users"),
      allowPlaintext: options.allowPlaintext ?? false,
      report: () => {},
    }),
    hasher,
    cache: new CredentialCache({ ttlMs: 60_000, maxEntries: 100, now: () => time.now }),
    allowPlaintext: options.allowPlaintext ?? false,
    argon2: CHEAP,
    rehashOnLogin: options.rehashOnLogin,
  });
  try {
    await fn({ auth, hasher, usersFile, time });
  } finally {
    await auth.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("FileAuthenticator accepts the right password with the canonical identity", async () => {
  await withAuthenticator(async ({ auth, usersFile }) => {
    await Deno.writeTextFile(usersFile, `alice@example.com:${await hashPassword("pw1", CHEAP)}\n`);
    assert.deepEqual(await auth.verifyPassword("Alice@EXAMPLE.com", "pw1"), {
      ok: true,
      email: "alice@example.com",
      domain: "example.com",
      backend: "file",
    });
    const wrong = await auth.verifyPassword("alice@example.com", "pw2");
    assert.equal(wrong.ok, false);
    assert.equal(!wrong.ok && wrong.reason, "invalid_credentials");
  });
});

Deno.test("FileAuthenticator answers repeats from the cache and drops entries when the file changes", async () => {
  await withAuthenticator(async ({ auth, hasher, usersFile, time }) => {
    const first = await hashPassword("pw1", CHEAP);
    await Deno.writeTextFile(usersFile, `alice@example.com:${first}\n`);
    assert.equal((await auth.verifyPassword("alice@example.com", "pw1")).ok, true);
    assert.equal((await auth.verifyPassword("alice@example.com", "pw1")).ok, true);
    assert.equal((await auth.verifyPassword("ALICE@example.com", "pw1")).ok, true);
    assert.equal(hasher.verified.length, 1, "repeats come from the cache");

    // Failures are never cached: each wrong attempt goes to the pool.
    assert.equal((await auth.verifyPassword("alice@example.com", "bad")).ok, false);
    assert.equal((await auth.verifyPassword("alice@example.com", "bad")).ok, false);
    assert.equal(hasher.verified.length, 3);

    // A new password in the file: the cached old one no longer counts.
    await Deno.writeTextFile(
      usersFile,
      `# changed\nalice@example.com:${await hashPassword("pw2", CHEAP)}\n`,
    );
    assert.equal((await auth.verifyPassword("alice@example.com", "pw1")).ok, false);
    assert.equal(hasher.verified.length, 4);
    assert.equal((await auth.verifyPassword("alice@example.com", "pw2")).ok, true);
    assert.equal((await auth.verifyPassword("alice@example.com", "pw2")).ok, true);
    assert.equal(hasher.verified.length, 5);

    // The TTL runs out.
    time.now += 60_000;
    assert.equal((await auth.verifyPassword("alice@example.com", "pw2")).ok, true);
    assert.equal(hasher.verified.length, 6);

    // The user is removed: a cached credential must not keep them in.
    await Deno.writeTextFile(usersFile, "# nobody\n");
    const removed = await auth.verifyPassword("alice@example.com", "pw2");
    assert.equal(!removed.ok && removed.reason, "invalid_credentials");
  });
});

Deno.test("FileAuthenticator verifies against a dummy argon2 hash for unknown users", async () => {
  await withAuthenticator(async ({ auth, hasher, usersFile }) => {
    const result = await auth.verifyPassword("ghost@example.com", "pw");
    assert.deepEqual(result, { ok: false, reason: "invalid_credentials", detail: "unknown user" });
    assert.equal(hasher.hashed, 1);
    assert.equal(hasher.verified.length, 1);
    assert.match(hasher.verified[0], /^\{ARGON2ID\}\$argon2id\$v=19\$m=64,t=1,p=1\$/);
    await auth.verifyPassword("ghost2@example.com", "pw");
    assert.equal(hasher.hashed, 1, "the dummy hash is made once");
    assert.equal(hasher.verified.length, 2);

    // The file gains the user: no restart needed.
    await Deno.writeTextFile(usersFile, `ghost@example.com:${await hashPassword("pw", CHEAP)}\n`);
    assert.equal((await auth.verifyPassword("ghost@example.com", "pw")).ok, true);
  });
});

Deno.test("FileAuthenticator refuses plain-text entries unless allowed", async () => {
  await withAuthenticator(async ({ auth, usersFile }) => {
    await Deno.writeTextFile(usersFile, "dev@example.com:{PLAIN}devpw\n");
    const refused = await auth.verifyPassword("dev@example.com", "devpw");
    assert.equal(!refused.ok && refused.reason, "invalid_credentials");
  });
  await withAuthenticator(async ({ auth, usersFile }) => {
    await Deno.writeTextFile(usersFile, "dev@example.com:{PLAIN}devpw\n");
    assert.equal((await auth.verifyPassword("dev@example.com", "devpw")).ok, true);
    assert.equal((await auth.verifyPassword("dev@example.com", "devpw2")).ok, false);
  }, { allowPlaintext: true });
});

Deno.test("FileAuthenticator reports a temporary failure when it cannot hash", async () => {
  await withAuthenticator(async ({ auth, hasher, usersFile }) => {
    await Deno.writeTextFile(usersFile, `alice@example.com:${await hashPassword("pw1", CHEAP)}\n`);
    await hasher.close();
    const result = await auth.verifyPassword("alice@example.com", "pw1");
    assert.equal(!result.ok && result.reason, "temporary_failure");
    assert.ok(!result.ok && !result.detail?.includes("pw1"));
  });
});

Deno.test("FileAuthenticator rejects user names that are not email addresses without hashing", async () => {
  await withAuthenticator(async ({ auth, hasher }) => {
    const result = await auth.verifyPassword("alice", "pw");
    assert.equal(!result.ok && result.reason, "invalid_credentials");
    assert.equal(hasher.verified.length, 0);
  });
});

/** Imported hashes of `correct horse` style test vectors: [user, stored, right password]. */
const IMPORTED: [string, string, string][] = [
  ["ssha@example.com", "{SSHA}vvumNRLHT6gOFnC02GZrVD1c43ePHi08S1ppeA==", "correct horse"],
  [
    "sha512@example.com",
    "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    "Hello world!",
  ],
  [
    "bcrypt@example.com",
    "{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
    "U*U",
  ],
];

/** Verifications against an argon2id hash with the configured (production) parameters. */
function productionVerifies(hasher: CountingHasher): number {
  return hasher.verified.filter((stored) =>
    stored.startsWith("{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$")
  ).length;
}

Deno.test("FileAuthenticator: every check costs exactly one production argon2id, whatever the stored hash", async () => {
  await withAuthenticator(async ({ auth, hasher, usersFile }) => {
    const weakArgon2 = await hashPassword("pw", { memoryKib: 128, iterations: 1, parallelism: 1 });
    const lines = [
      ...IMPORTED.map(([user, stored]) => `${user}:${stored}`),
      `weakargon@example.com:${weakArgon2}`,
      `prod@example.com:${await hashPassword("pw", CHEAP)}`,
    ];
    await Deno.writeTextFile(usersFile, lines.join("\n") + "\n");
    const users = [
      ...IMPORTED.map(([user]) => user),
      "weakargon@example.com",
      "prod@example.com",
      "ghost@example.com",
    ];
    for (const user of users) {
      const before = productionVerifies(hasher);
      const result = await auth.verifyPassword(user, "wrong password");
      assert.equal(!result.ok && result.reason, "invalid_credentials", user);
      assert.equal(productionVerifies(hasher) - before, 1, `a failure for ${user}`);
    }
    // A success against an imported hash looks like one against a production hash, too.
    for (const [user, , password] of IMPORTED) {
      const before = productionVerifies(hasher);
      assert.equal((await auth.verifyPassword(user, password)).ok, true, user);
      assert.equal(productionVerifies(hasher) - before, 1, `a success for ${user}`);
    }
    assert.equal(hasher.hashed, 1, "only the dummy hash was made: rehash_on_login is off");
  });
});

Deno.test("FileAuthenticator with rehash_on_login upgrades an imported hash on success and keeps every other line", async () => {
  await withAuthenticator(async ({ auth, hasher, usersFile }) => {
    const [user, stored, password] = IMPORTED[0];
    const prod = await hashPassword("pw", CHEAP);
    const before = `# imported 2026-11\n${user}:${stored}\nprod@example.com:${prod}\n`;
    await Deno.writeTextFile(usersFile, before);

    // A wrong password changes nothing.
    assert.equal((await auth.verifyPassword(user, "wrong")).ok, false);
    assert.equal(hasher.hashed, 1, "the dummy only");
    assert.equal(await Deno.readTextFile(usersFile), before);

    assert.equal((await auth.verifyPassword(user, password)).ok, true);
    const after = (await Deno.readTextFile(usersFile)).split("\n");
    assert.equal(after[0], "# imported 2026-11");
    assert.match(after[1], /^ssha@example\.com:\{ARGON2ID\}\$argon2id\$v=19\$m=64,t=1,p=1\$/);
    assert.equal(after[2], `prod@example.com:${prod}`);
    assert.equal(after.length, 4);

    // The new hash is what counts now; a current hash is not rehashed again.
    const hashed = hasher.hashed;
    assert.equal((await auth.verifyPassword(user, password)).ok, true);
    assert.equal((await auth.verifyPassword(user, "wrong")).ok, false);
    assert.equal((await auth.verifyPassword("prod@example.com", "pw")).ok, true);
    assert.equal(hasher.hashed, hashed);
    assert.equal(hasher.verified.at(-2)?.startsWith("{ARGON2ID}"), true);
  }, { rehashOnLogin: true });
});

Deno.test("UserStore.upgradeHash leaves a line alone whose password changed meanwhile", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_upgrade_" });
  try {
    const usersFile = join(dir, "users.txt");
    const store = new UserStore({
      usersFile,
      usersDir: join(dir, "users"),
      allowPlaintext: false,
      report: () => {},
    });
    const [user, stored] = IMPORTED[0];
    await Deno.writeTextFile(usersFile, `${user}:${stored}\n`);
    const entry = await store.lookup(user);
    assert.ok(entry !== null);
    // The operator sets a new password (as `relay user passwd` does) before the upgrade lands.
    const changed = await hashPassword("operator's choice", CHEAP);
    await store.setPassword(user, changed);
    assert.equal(await store.upgradeHash(entry, await hashPassword("correct horse", CHEAP)), false);
    assert.equal(await Deno.readTextFile(usersFile), `${user}:${changed}\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
