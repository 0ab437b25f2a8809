import assert from "node:assert/strict";
import fc from "fast-check";
import { FilterParser } from "ldapts";
import { domainDcChain, escapeDnValue, escapeFilterValue, fillTemplate } from "./escape.ts";
import { splitDn } from "./admin.ts";

Deno.test("escapeFilterValue escapes the RFC 4515 specials", () => {
  assert.equal(escapeFilterValue("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
  assert.equal(escapeFilterValue("a\\b\0c"), "a\\5cb\\00c");
  assert.equal(escapeFilterValue("jöhn.doe+tag@example.com"), "jöhn.doe+tag@example.com");
});

Deno.test("an escaped value stays one equality assertion, whatever it contains", () => {
  fc.assert(fc.property(fc.string({ unit: "grapheme-composite" }), (value) => {
    const filter = FilterParser.parseString(`(mail=${escapeFilterValue(value)})`);
    assert.equal(filter.constructor.name, "EqualityFilter");
    assert.equal((filter as unknown as { value: string }).value, value);
  }));
});

Deno.test("escapeDnValue escapes the RFC 4514 specials", () => {
  assert.equal(escapeDnValue("doe, john"), "doe\\, john");
  assert.equal(escapeDnValue('a+b"c;d<e>f=g\\h'), 'a\\+b\\"c\\;d\\<e\\>f\\=g\\\\h');
  assert.equal(escapeDnValue("#x"), "\\#x");
  assert.equal(escapeDnValue(" x "), "\\ x\\ ");
  assert.equal(escapeDnValue("a\0b"), "a\\00b");
  assert.equal(
    escapeDnValue("x,ou=services,dc=example,dc=com"),
    "x\\,ou\\=services\\,dc\\=example\\,dc\\=com",
  );
});

Deno.test("an escaped DN value stays one RDN", () => {
  fc.assert(fc.property(fc.string(), (value) => {
    const rdns = splitDn(`uid=${escapeDnValue(value)},ou=users,dc=example,dc=com`);
    assert.equal(rdns.length, 4);
    assert.equal(rdns.slice(1).join(","), "ou=users,dc=example,dc=com");
  }));
});

Deno.test("fillTemplate escapes values, inserts raw ones, refuses unknown placeholders", () => {
  const filled = fillTemplate("uid={local},ou=users,dc={domain_dc}", { local: "a,b" }, {
    escape: escapeDnValue,
    raw: { domain_dc: domainDcChain("company.com") },
  });
  assert.equal(filled, "uid=a\\,b,ou=users,dc=company,dc=com");
  assert.throws(
    () => fillTemplate("(mail={mial})", { email: "x" }, { escape: escapeFilterValue }),
    /unknown placeholder \{mial\}/,
  );
});
