import assert from "node:assert/strict";
import { parseShaCrypt, shaCrypt, shaCryptVerify } from "./sha_crypt.ts";

/** [password, expected]: Drepper's specification vectors and `openssl passwd -5/-6` output. */
const VECTORS: [string, string][] = [
  // Specification test vectors (also reproduced with `openssl passwd`).
  [
    "Hello world!",
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
  ],
  [
    "Hello world!",
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
  ],
  [
    "This is just a test",
    "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
  ],
  [
    "the minimum number is still observed",
    "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
  ],
  ["Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"],
  [
    "This is just a test",
    "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5",
  ],
  [
    "the minimum number is still observed",
    "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
  ],
  // openssl passwd -6 -salt 'QbM7bS3.x1fYqG9X' 'correct horse'
  [
    "correct horse",
    "$6$QbM7bS3.x1fYqG9X$QCCZ/d1u4/z41vmVMd2SDRAPLHgBB9dxGJCnGAdUdHeX4Vk1Oynz0ud1QUl6wc6fHRAsXceFXolN.HlKn2BuT0",
  ],
  // openssl passwd -6 -salt 'rounds=1000$sh0rt' 'päss wörd ü' (UTF-8 password)
  [
    "päss wörd ü",
    "$6$rounds=1000$sh0rt$xVQROY/3dyQTMiv0sUbV5rQ3QtKw9oNa.fIfi/3dTJyewoN1teT5AbR9bnba5HcGf8JOVPpa/GCD/Nd51uCef1",
  ],
  // openssl passwd -5 -salt 'Zl8xu3fT' 'correct horse'
  ["correct horse", "$5$Zl8xu3fT$L0oy2E88UJNexHmzOZtSVxkjI8dhu4a8mwoV3zDkpB."],
  // openssl passwd -5 -salt 'rounds=12000$abc' 'correct horse'
  ["correct horse", "$5$rounds=12000$abc$AnAUp8yW/5ABHWTdxGBf4r6P17RWZYclD6c8UYQnRWA"],
];

Deno.test("shaCrypt() reproduces the specification and openssl hashes", () => {
  for (const [password, expected] of VECTORS) {
    assert.equal(shaCrypt(password, expected), expected);
  }
});

Deno.test("shaCrypt() cuts long salts to 16 characters and clamps rounds", () => {
  // openssl passwd -6 -salt 'abcdefghijklmnopqrstuvwxyz' 'long salt'
  assert.equal(
    shaCrypt("long salt", "$6$abcdefghijklmnopqrstuvwxyz"),
    "$6$abcdefghijklmnop$BCwKgg1Ep8GM2zRLxsENjI.q7/X8bEZIGRNqdyNVfvGPoCQvo3l51wWgycG/3wBskwPXyQ8r9TFdvmokypbKc/",
  );
  assert.equal(
    shaCrypt("the minimum number is still observed", "$5$rounds=10$roundstoolow"),
    "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
  );
});

Deno.test("shaCryptVerify() accepts the right password and rejects others", () => {
  for (const [password, stored] of VECTORS) {
    assert.equal(shaCryptVerify(password, stored), true, stored);
    assert.equal(shaCryptVerify(password + "x", stored), false, stored);
    assert.equal(shaCryptVerify("", stored), false, stored);
  }
});

Deno.test("parseShaCrypt() refuses other schemes and truncated hashes", () => {
  assert.equal(parseShaCrypt("$1$abc$def"), null);
  assert.equal(parseShaCrypt("$6$saltstring$svn8UoSVapNtMuq1ukKS4t"), null);
  assert.equal(parseShaCrypt("$5$salt$" + "a".repeat(86)), null);
  assert.deepEqual(parseShaCrypt("$6$rounds=10$x"), {
    id: "6",
    rounds: 1000,
    customRounds: true,
    salt: "x",
    hash: "",
  });
  assert.throws(() => shaCryptVerify("x", "$6$saltonly"), /malformed/);
});
