import assert from "node:assert/strict";
import { join } from "node:path";
import { hashPassword } from "./password_hash.ts";
import { parseUserFile, UserFileError, type UserFileProblem, UserStore } from "./user_file.ts";

const SSHA = "{SSHA}vvumNRLHT6gOFnC02GZrVD1c43ePHi08S1ppeA=="; // "correct horse"
const SHA512 =
  "{SHA512-CRYPT}$6$QbM7bS3.x1fYqG9X$QCCZ/d1u4/z41vmVMd2SDRAPLHgBB9dxGJCnGAdUdHeX4Vk1Oynz0ud1QUl6wc6fHRAsXceFXolN.HlKn2BuT0";
const BCRYPT = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";

async function withStore(
  fn: (ctx: {
    dir: string;
    store: UserStore;
    problems: UserFileProblem[];
    usersFile: string;
    usersDir: string;
  }) => Promise<void>,
  allowPlaintext = false,
  now?: () => number,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_user_file_" });
  try {
    const problems: UserFileProblem[] = [];
    const usersFile = join(dir, "users.txt");
    const usersDir = join(dir, "users");
    const store = new UserStore({
      usersFile,
      usersDir,
      allowPlaintext,
      report: (problem) => problems.push(problem),
      now,
    });
    await fn({ dir, store, problems, usersFile, usersDir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseUserFile() keeps good lines and reports bad ones by line, without secrets", () => {
  const text = [
    "# users", //                                        1
    "", //                                                2
    `Alice@Example.COM:${SSHA}\r`, //                     3 CRLF, case folded
    "no colon here", //                                   4
    "not-an-email:{SSHA}abc", //                          5
    `bob@example.com:${SHA512}:::`, //                    6 empty passwd-file fields
    `carol@example.com:${SHA512}:1000:1000::/home`, //    7 extra fields
    "dave@example.com:{MD5}hunter2secret", //             8 unknown scheme
    "erin@example.com:hunter2secret", //                  9 bare plain text
    "frank@example.com:{PLAIN}hunter2secret", //          10
    `alice@example.com:${BCRYPT}`, //                     11 duplicate
    "gina@example.com:", //                               12
    `  # indented comment`, //                            13
    `hal@other.org:${BCRYPT}`, //                         14
  ].join("\n");
  const parsed = parseUserFile(text, { file: "f.txt", domain: null, allowPlaintext: false });
  assert.deepEqual([...parsed.entries.keys()], [
    "alice@example.com",
    "bob@example.com",
    "hal@other.org",
  ]);
  const alice = parsed.entries.get("alice@example.com")!;
  assert.deepEqual(alice, {
    email: "alice@example.com",
    domain: "example.com",
    hash: SSHA,
    scheme: "SSHA",
    file: "f.txt",
    line: 3,
  });
  assert.equal(parsed.entries.get("hal@other.org")?.scheme, "BLF-CRYPT");
  assert.deepEqual(parsed.problems.map((p) => `${p.line}:${p.level}`), [
    "4:warning",
    "5:warning",
    "7:warning",
    "8:warning",
    "9:error",
    "10:error",
    "11:warning",
    "12:warning",
  ]);

  assert.match(parsed.problems.find((p) => p.line === 9)!.message, /plain-text password refused/);
  assert.match(parsed.problems.find((p) => p.line === 8)!.message, /unknown password scheme/);
  for (const problem of parsed.problems) {
    assert.ok(!problem.message.includes("hunter2"), problem.message);
    assert.ok(!problem.message.includes("vvumNRL"), problem.message);
  }
});

Deno.test("parseUserFile() accepts plain text with a warning when allowed", () => {
  const parsed = parseUserFile("erin@example.com:hunter2\nfrank@example.com:{PLAIN}x\n", {
    file: "f.txt",
    domain: null,
    allowPlaintext: true,
  });
  assert.equal(parsed.entries.get("erin@example.com")?.hash, "hunter2");
  assert.equal(parsed.entries.get("frank@example.com")?.scheme, "PLAIN");
  assert.deepEqual(parsed.problems.map((p) => p.level), ["warning", "warning"]);
  assert.ok(parsed.problems.every((p) => !p.message.includes("hunter2")));
});

Deno.test("parseUserFile() skips lines for other domains in a per-domain file", () => {
  const parsed = parseUserFile(`a@example.com:${SSHA}\nb@evil.test:${SSHA}\n`, {
    file: "example.com.txt",
    domain: "example.com",
    allowPlaintext: false,
  });
  assert.deepEqual([...parsed.entries.keys()], ["a@example.com"]);
  assert.match(parsed.problems[0].message, /another domain \(evil\.test\)/);
});

Deno.test("UserStore looks in the domain's file first, then the global file", async () => {
  await withStore(async ({ store, usersFile, usersDir }) => {
    await Deno.mkdir(usersDir);
    await Deno.writeTextFile(usersFile, `alice@example.com:${BCRYPT}\nbob@example.com:${SSHA}\n`);
    await Deno.writeTextFile(join(usersDir, "example.com.txt"), `alice@example.com:${SHA512}\n`);
    await Deno.writeTextFile(
      join(usersDir, "xn--bcher-kva.example.txt"),
      `Carl@Bücher.Example:${SSHA}\n`,
    );
    assert.equal((await store.lookup("ALICE@example.com"))?.hash, SHA512);
    assert.equal((await store.lookup("bob@EXAMPLE.com"))?.file, usersFile);
    assert.equal((await store.lookup("carl@bücher.example"))?.email, "carl@xn--bcher-kva.example");
    assert.equal(await store.lookup("nobody@example.com"), null);
    assert.equal(await store.lookup("not an email"), null);
  });
});

Deno.test("UserStore sees edits without a restart and reports problems once per change", async () => {
  await withStore(async ({ store, usersFile, problems }) => {
    assert.equal(await store.lookup("alice@example.com"), null, "missing file: no users");
    await Deno.writeTextFile(usersFile, `alice@example.com:${SSHA}\nbroken line\n`);
    assert.equal((await store.lookup("alice@example.com"))?.hash, SSHA);
    assert.equal((await store.lookup("alice@example.com"))?.hash, SSHA);
    assert.equal(problems.length, 1, "an unchanged file is not parsed again");
    assert.equal(problems[0].line, 2);
    await Deno.writeTextFile(usersFile, `# alice moved to bcrypt\nalice@example.com:${BCRYPT}\n`);
    const entry = await store.lookup("alice@example.com");
    assert.equal(entry?.hash, BCRYPT);
    assert.equal(entry?.line, 2);
    await Deno.remove(usersFile);
    assert.equal(await store.lookup("alice@example.com"), null);
  });
});

Deno.test("UserStore sees a domain file created right after a lookup found it missing", async () => {
  // The clock runs 60 s ahead of the files' timestamps and each round sets the folder's mtime back
  // 10 s: the folder counts as settled, so "missing" is remembered by its signature, and the file's
  // creation (mtime now, 10 s later) changes it.
  await withStore(
    async ({ store, usersFile, usersDir }) => {
      await Deno.mkdir(usersDir);
      await Deno.writeTextFile(usersFile, `bob@example.com:${SSHA}\n`);
      const domainFile = join(usersDir, "example.org.txt");
      for (let round = 0; round < 3; round++) {
        const past = new Date(Date.now() - 10_000);
        await Deno.utime(usersDir, past, past);
        assert.equal(await store.lookup("carol@example.org"), null, "no file for example.org yet");
        assert.equal(await store.lookup("carol@example.org"), null, "still none");
        await Deno.writeTextFile(domainFile, `carol@example.org:${SHA512}\n`);
        assert.equal((await store.lookup("carol@example.org"))?.hash, SHA512, "seen at once");
        await Deno.remove(domainFile);
        assert.equal(await store.lookup("carol@example.org"), null, "gone at once");
      }
      assert.equal((await store.lookup("bob@example.com"))?.file, usersFile);
    },
    false,
    () => Date.now() + 60_000,
  );
});

Deno.test("UserStore.addUser() writes the domain file 0600, atomically, and refuses duplicates", async () => {
  await withStore(async ({ store, usersFile, usersDir, dir }) => {
    const hash = await hashPassword("pw", { memoryKib: 64, iterations: 1, parallelism: 1 });
    const file = await store.addUser("Alice@Example.com", hash, { target: "domain" });
    assert.equal(file, join(usersDir, "example.com.txt"));
    assert.equal(await Deno.readTextFile(file), `alice@example.com:${hash}\n`);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal((await store.lookup("alice@example.com"))?.hash, hash);
    await assert.rejects(
      store.addUser("alice@example.com", hash, { target: "global" }),
      (error: Error) => error instanceof UserFileError && /already exists in/.test(error.message),
    );
    await Deno.writeTextFile(usersFile, "# global users\nbob@example.com:{PLAIN}x"); // no newline
    await assert.rejects(store.addUser("bob@example.com", hash, { target: "domain" }), /already/);
    assert.equal(await store.addUser("carol@example.com", SSHA, { target: "global" }), usersFile);
    assert.equal(
      await Deno.readTextFile(usersFile),
      `# global users\nbob@example.com:{PLAIN}x\ncarol@example.com:${SSHA}\n`,
    );
    await assert.rejects(
      store.addUser("dave@example.com", "{PLAIN}x", { target: "domain" }),
      /plain-text/,
    );
    await assert.rejects(store.addUser("dave@example.com", "{FOO}x", { target: "domain" }), /FOO/);
    await assert.rejects(store.addUser("nope", SSHA, { target: "domain" }), /not a valid email/);
    const leftovers: string[] = [];
    for await (const item of Deno.readDir(usersDir)) leftovers.push(item.name);
    for await (const item of Deno.readDir(dir)) leftovers.push(item.name);
    // No temporary file is left; the lock file that serializes writers stays.
    assert.deepEqual(leftovers.sort(), [
      ".users.txt.lock",
      "example.com.txt",
      "users",
      "users.txt",
    ]);
  });
});

Deno.test("UserStore.setPassword() and removeUser() keep the other lines and comments", async () => {
  await withStore(async ({ store, usersFile, usersDir }) => {
    await Deno.mkdir(usersDir);
    const domainFile = join(usersDir, "example.com.txt");
    await Deno.writeTextFile(
      domainFile,
      `# example.com\r\nalice@example.com:hunter2\r\n\r\nbob@example.com:${SSHA}\r\n`,
    );
    await Deno.writeTextFile(usersFile, `# global\ncarol@example.com:${SSHA}\n`);
    assert.equal(await store.lookup("alice@example.com"), null, "plain text refused");
    assert.equal(await store.holder("alice@example.com"), domainFile);

    assert.equal(await store.setPassword("Alice@example.com", BCRYPT), domainFile);
    assert.equal(
      await Deno.readTextFile(domainFile),
      `# example.com\r\nalice@example.com:${BCRYPT}\r\n\r\nbob@example.com:${SSHA}\r\n`,
    );
    assert.equal((await store.lookup("alice@example.com"))?.hash, BCRYPT);
    assert.equal(await store.setPassword("carol@example.com", SHA512), usersFile);
    assert.equal(await Deno.readTextFile(usersFile), `# global\ncarol@example.com:${SHA512}\n`);

    assert.deepEqual(await store.removeUser("bob@example.com"), [domainFile]);
    assert.equal(
      await Deno.readTextFile(domainFile),
      `# example.com\r\nalice@example.com:${BCRYPT}\r\n\r\n`,
    );
    assert.equal(await store.lookup("bob@example.com"), null);
    await assert.rejects(store.removeUser("bob@example.com"), /no such user: bob@example.com/);
    await assert.rejects(store.setPassword("zed@example.com", SSHA), /no such user/);
  });
});

Deno.test("UserStore.listUsers() lists every file, or one domain's users", async () => {
  await withStore(async ({ store, usersFile, usersDir }) => {
    assert.deepEqual(await store.listUsers(), []);
    await Deno.mkdir(usersDir);
    await Deno.writeTextFile(join(usersDir, "example.com.txt"), `b@example.com:${SSHA}\n`);
    await Deno.writeTextFile(join(usersDir, "other.org.txt"), `c@other.org:${BCRYPT}\n`);
    await Deno.writeTextFile(join(usersDir, "README"), "not a users file\n");
    await Deno.writeTextFile(usersFile, `a@example.com:${SHA512}\nd@third.net:${SSHA}\n`);
    assert.deepEqual(
      (await store.listUsers()).map((u) => [u.email, u.scheme]),
      [
        ["a@example.com", "SHA512-CRYPT"],
        ["b@example.com", "SSHA"],
        ["c@other.org", "BLF-CRYPT"],
        ["d@third.net", "SSHA"],
      ],
    );
    assert.deepEqual(
      (await store.listUsers({ domain: "EXAMPLE.com" })).map((u) => u.email),
      ["a@example.com", "b@example.com"],
    );
    await assert.rejects(store.listUsers({ domain: "../etc" }), /not a valid domain/);
  });
});
