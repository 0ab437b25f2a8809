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
  options: { allowPlaintext?: boolean } = {},
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
