import assert from "node:assert/strict";
import { bcrypt } from "hash-wasm";
import {
  type Argon2Params,
  checkStoredHash,
  hashPassword,
  MAX_PASSWORD_BYTES,
  needsRehash,
  parseScheme,
  PasswordHashError,
  verifyPassword,
} from "./password_hash.ts";

const CHEAP: Argon2Params = { memoryKib: 64, iterations: 1, parallelism: 1 };
const STRICT = { allowPlaintext: false };
const LAX = { allowPlaintext: true };

/** [password, stored] pairs from outside this code base. */
const VECTORS: [string, string][] = [
  // phc-winner-argon2 src/test.c known answers (password "password", salt "somesalt").
  [
    "password",
    "{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
  ],
  [
    "password",
    "{ARGON2ID}$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc",
  ],
  [
    "password",
    "{ARGON2I}$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8",
  ],
  // python3 hashlib: base64(digest(password + salt) + salt), salt 8f1e2d3c4b5a6978.
  ["correct horse", "{SSHA}vvumNRLHT6gOFnC02GZrVD1c43ePHi08S1ppeA=="],
  ["correct horse", "{SSHA.HEX}befba63512c74fa80e1670b4d8666b543d5ce3778f1e2d3c4b5a6978"],
  ["correct horse", "{SSHA256}w1e9XsuyIBYuX4z88djy+K5JufBVDDVXbj5eEyw067aPHi08S1ppeA=="],
  [
    "correct horse",
    "{SSHA512}aeGjEyZ/xduwk9TaxD2oTaciZV7sb3a7S0fRMHkcNYghcPp7kTCF25HbaazbM8CjrKgcSRJzDAXHqHj7c8RJrI8eLTxLWml4",
  ],
  [
    "correct horse",
    "{SSHA512.HEX}69e1a313267fc5dbb093d4dac43da84da722655eec6f76bb4b47d130791c35882170fa7b913085db91db69acdb33c0a3aca81c4912730c05c7a878fb73c449ac8f1e2d3c4b5a6978",
  ],
  // python3 hashlib, UTF-8 password, 4-byte salt 01020304.
  ["pässword", "{SSHA}+HafkagvRrpjxIzDCY+boxDXOCIBAgME"],
  // openssl passwd -6 / -5.
  [
    "correct horse",
    "{SHA512-CRYPT}$6$QbM7bS3.x1fYqG9X$QCCZ/d1u4/z41vmVMd2SDRAPLHgBB9dxGJCnGAdUdHeX4Vk1Oynz0ud1QUl6wc6fHRAsXceFXolN.HlKn2BuT0",
  ],
  ["correct horse", "{SHA256-CRYPT}$5$Zl8xu3fT$L0oy2E88UJNexHmzOZtSVxkjI8dhu4a8mwoV3zDkpB."],
  ["correct horse", "{CRYPT}$5$Zl8xu3fT$L0oy2E88UJNexHmzOZtSVxkjI8dhu4a8mwoV3zDkpB."],
  // PHP manual, password_verify() example.
  ["rasmuslerdorf", "{BLF-CRYPT}$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"],
  // Openwall crypt_blowfish test vectors.
  ["U*U", "{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"],
  ["U*U*U", "{CRYPT}$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a"],
  // Bare values, recognised by their prefix.
  [
    "password",
    "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
  ],
  [
    "correct horse",
    "$6$QbM7bS3.x1fYqG9X$QCCZ/d1u4/z41vmVMd2SDRAPLHgBB9dxGJCnGAdUdHeX4Vk1Oynz0ud1QUl6wc6fHRAsXceFXolN.HlKn2BuT0",
  ],
  ["U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"],
  ["rasmuslerdorf", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"],
];

Deno.test("verifyPassword() accepts every supported scheme with the right password", async () => {
  for (const [password, stored] of VECTORS) {
    assert.equal(await verifyPassword(password, stored, STRICT), true, stored);
  }
});

Deno.test("verifyPassword() rejects wrong passwords for every scheme", async () => {
  for (const [password, stored] of VECTORS) {
    assert.equal(await verifyPassword(password + "!", stored, STRICT), false, stored);
    assert.equal(await verifyPassword(password.slice(1), stored, STRICT), false, stored);
  }
});

Deno.test("hashPassword() makes a Dovecot {ARGON2ID} PHC string that round-trips", async () => {
  const stored = await hashPassword("s3cret pässword", CHEAP);
  assert.match(
    stored,
    /^\{ARGON2ID\}\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/,
  );
  assert.equal(await verifyPassword("s3cret pässword", stored, STRICT), true);
  assert.equal(await verifyPassword("s3cret passw0rd", stored, STRICT), false);
  const again = await hashPassword("s3cret pässword", CHEAP);
  assert.notEqual(again, stored, "a fresh random salt each time");
});

Deno.test("hashPassword() refuses empty passwords and bad parameters", async () => {
  await assert.rejects(hashPassword("", CHEAP), RangeError);
  await assert.rejects(hashPassword("x", { ...CHEAP, memoryKib: 4 }), RangeError);
  await assert.rejects(hashPassword("x".repeat(MAX_PASSWORD_BYTES + 1), CHEAP), RangeError);
});

Deno.test("verifyPassword() checks bcrypt hashes made by hash-wasm, cutting keys at 72 bytes", async () => {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const made = await bcrypt({ password: "hunter2", salt, costFactor: 4 });
  assert.equal(await verifyPassword("hunter2", `{BLF-CRYPT}${made}`, STRICT), true);
  assert.equal(await verifyPassword("hunter3", `{BLF-CRYPT}${made}`, STRICT), false);
  const y = made.replace(/^\$2a\$/, "$2y$");
  assert.equal(await verifyPassword("hunter2", y, STRICT), true, "$2y$ is the same algorithm");
  // bcrypt reads only the first 72 bytes of the key, as every implementation does.
  const long = "a".repeat(72);
  const stored = await bcrypt({ password: long, salt, costFactor: 4 });
  assert.equal(await verifyPassword(long + "tail", stored, STRICT), true);
  assert.equal(await verifyPassword(long.slice(1), stored, STRICT), false);
  assert.equal(await verifyPassword("", stored, STRICT), false);
});

Deno.test("verifyPassword() refuses plain text unless it is allowed", async () => {
  for (const stored of ["{PLAIN}opensesame", "{CLEARTEXT}opensesame", "opensesame"]) {
    await assert.rejects(
      verifyPassword("opensesame", stored, STRICT),
      (error: Error) =>
        error instanceof PasswordHashError && /plain-text/.test(error.message) &&
        !error.message.includes("opensesame"),
    );
    assert.equal(await verifyPassword("opensesame", stored, LAX), true, stored);
    assert.equal(await verifyPassword("opensesam", stored, LAX), false, stored);
    assert.equal(await verifyPassword("opensesame!", stored, LAX), false, stored);
  }
});

Deno.test("verifyPassword() throws clear errors without the stored value for unusable hashes", async () => {
  const cases: [string, RegExp][] = [
    ["{MD5-CRYPT}$1$saltsalt$secretsecretsecretsecre", /unknown password scheme \{MD5-CRYPT\}/],
    ["{CRYPT}$1$saltsalt$secretsecretsecretsecre", /unsupported crypt\(3\) hash type \$1\$/],
    ["$y$j9T$secretsecretsecret$secretsecretsecret", /unsupported crypt\(3\) hash type \$y\$/],
    ["{SSHA}not*base64secret", /malformed \{SSHA\}/],
    ["{SSHA}c2VjcmV0", /too short/],
    ["{SHA512-CRYPT}$5$Zl8xu3fT$L0oy2E88UJNexHmzOZtSVxkjI8dhu4a8mwoV3zDkpB.", /malformed/],
    [
      "{ARGON2ID}$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkU",
      /argon2i/,
    ],
    ["{ARGON2ID}$argon2id$v=16$m=256,t=2,p=1$c29tZXNhbHQ$c2VjcmV0c2VjcmV0", /version/],
    ["{ARGON2ID}$argon2id$v=19$m=99999999,t=2,p=1$c29tZXNhbHQ$c2VjcmV0c2VjcmV0", /range/],
    ["{BLF-CRYPT}$2y$10$secret", /malformed \{BLF-CRYPT\}/],
    ["{SSHA.ROT13}c2VjcmV0", /encoding suffix/],
  ];
  for (const [stored, pattern] of cases) {
    await assert.rejects(
      verifyPassword("secret", stored, STRICT),
      (error: Error) => {
        assert.ok(error instanceof PasswordHashError, stored);
        assert.match(error.message, pattern);
        assert.ok(!error.message.includes("secret"), error.message);
        return true;
      },
    );
    assert.notEqual(checkStoredHash(stored), null, stored);
  }
});

Deno.test("verifyPassword() rejects passwords over the length limit without hashing", async () => {
  const stored = "{SSHA}vvumNRLHT6gOFnC02GZrVD1c43ePHi08S1ppeA==";
  assert.equal(await verifyPassword("x".repeat(MAX_PASSWORD_BYTES + 1), stored, STRICT), false);
});

Deno.test("parseScheme() reads explicit schemes, $-prefixes and bare plain text", () => {
  assert.deepEqual(parseScheme("{ssha512.hex}abcd"), {
    scheme: "SSHA512",
    encoding: "hex",
    value: "abcd",
    explicit: true,
  });
  assert.equal(parseScheme("{BLF-CRYPT}$2y$05$x").scheme, "BLF-CRYPT");
  assert.equal(parseScheme("$2b$05$x").scheme, "BLF-CRYPT");
  assert.equal(parseScheme("$6$salt$hash").scheme, "SHA512-CRYPT");
  assert.equal(parseScheme("$5$salt$hash").scheme, "SHA256-CRYPT");
  assert.equal(parseScheme("$argon2id$v=19$...").scheme, "ARGON2ID");
  assert.equal(parseScheme("$argon2i$v=19$...").scheme, "ARGON2I");
  assert.equal(parseScheme("$1$salt$hash").scheme, "CRYPT");
  assert.deepEqual(parseScheme("hunter2"), {
    scheme: "PLAIN",
    encoding: null,
    value: "hunter2",
    explicit: false,
  });
  assert.equal(
    checkStoredHash(
      "{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
    ),
    null,
  );
  assert.equal(checkStoredHash("{PLAIN}x"), null);
});

Deno.test("needsRehash is false only for argon2id with exactly the configured parameters", async () => {
  const params = { memoryKib: 64, iterations: 1, parallelism: 1 };
  assert.equal(needsRehash(await hashPassword("pw", params), params), false);
  assert.equal(needsRehash(await hashPassword("pw", { ...params, memoryKib: 128 }), params), true);
  assert.equal(needsRehash("{SSHA}vvumNRLHT6gOFnC02GZrVD1c43ePHi08S1ppeA==", params), true);
  assert.equal(
    needsRehash("$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", params),
    true,
  );
  assert.equal(needsRehash("{PLAIN}pw", params), true);
  assert.equal(needsRehash("{SSHA.ROT13}abc", params), true);
});
