import assert from "node:assert/strict";
import { parseFromMailbox } from "./header_from.ts";

Deno.test("parseFromMailbox: one mailbox in its usual forms", () => {
  const address = (value: string) => {
    const parsed = parseFromMailbox(value);
    return parsed.ok ? parsed.address.canonical : parsed.reason;
  };
  assert.equal(address("alice@example.com"), "alice@example.com");
  assert.equal(address("Alice <Alice@Example.COM>"), "alice@example.com");
  assert.equal(address('"Smith, Alice <boss@other.example>" <a@example.com>'), "a@example.com");
  assert.equal(address("a@example.com (Alice, the <boss>)"), "a@example.com");
  assert.equal(address("=?UTF-8?Q?J=C3=B6rg?= <jorg@example.com>"), "jorg@example.com");
  assert.equal(address("a@example.com, b@example.com"), "multiple");
  assert.equal(address("A <a@example.com>, B <b@example.com>"), "multiple");
  assert.equal(address("<a@example.com> <b@example.com>"), "multiple");
  assert.equal(address("undisclosed:;"), "malformed");
  assert.equal(address("<a@example.com"), "malformed");
  assert.equal(address('"unterminated <a@example.com>'), "malformed");
  assert.equal(address("nobody"), "malformed");
  assert.equal(address(""), "malformed");
});
