/**
 * Time to a failed password check in the file backend, by kind of account:
 * unknown, current argon2id, and imported {SSHA} / {SHA512-CRYPT} /
 * {BLF-CRYPT} hashes. With the production argon2id parameters, every row
 * should cost about one argon2id verification (the README's timing note).
 *
 * ```sh
 * deno bench --allow-all bench/auth_timing_bench.ts
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { FileAuthenticator, hashPassword, HashPool, UserStore } from "../src/auth/mod.ts";

const ARGON2 = { memoryKib: 19456, iterations: 2, parallelism: 1 };
const dir = await Deno.makeTempDir({ prefix: "relay_auth_bench_" });
const usersFile = join(dir, "users.txt");
await Deno.writeTextFile(
  usersFile,
  [
    `argon2@example.com:${await hashPassword("right", ARGON2)}`,
    "ssha@example.com:{SSHA}vvumNRLHT6gOFnC02GZrVD1c43ePHi08S1ppeA==",
    "sha512@example.com:{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    "bcrypt@example.com:{BLF-CRYPT}$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
  ].join("\n") + "\n",
);
const auth = new FileAuthenticator({
  store: new UserStore({ usersFile, usersDir: join(dir, "users"), allowPlaintext: false }),
  hasher: new HashPool({ size: 2 }),
  cache: null,
  allowPlaintext: false,
  argon2: ARGON2,
});
// Make the dummy hash outside the measurements.
await auth.verifyPassword("warm-up@example.com", "wrong");

for (const user of ["nobody", "argon2", "ssha", "sha512", "bcrypt"]) {
  Deno.bench({
    name: `535 for ${user}@example.com`,
    group: "failed AUTH",
    baseline: user === "nobody",
    n: 20,
    warmup: 2,
    async fn() {
      const result = await auth.verifyPassword(`${user}@example.com`, "wrong password");
      if (result.ok) throw new Error("a wrong password was accepted");
    },
  });
}

globalThis.addEventListener("unload", () => {
  void auth.close();
  Deno.removeSync(dir, { recursive: true });
});
