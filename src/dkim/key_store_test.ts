import assert from "node:assert/strict";
import { dnsRecord } from "./dns.ts";
import { DkimKeyStore, keyState } from "./key_store.ts";

Deno.test("rotate: new keys wait, the old ones retire at take-over and expire after the overlap", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new DkimKeyStore(dir);
    const t0 = new Date("2026-11-01T00:00:00Z");
    const [first] = await store.generate("example.com", { algorithm: "ed25519", now: t0 });
    assert.equal(first.selector, "20261101");
    const t1 = new Date("2026-11-29T00:00:00Z");
    const [second] = await store.rotate("example.com", { waitHours: 48, overlapDays: 7, now: t1 });
    assert.equal(second.selector, "20261129");
    const at = (iso: string) =>
      store.keys("example.com").then((keys) =>
        keys.map((k) => `${k.selector}:${keyState(k, new Date(iso))}`)
      );
    assert.deepEqual(await at("2026-11-30T00:00:00Z"), ["20261101:active", "20261129:pending"]);
    assert.deepEqual(await at("2026-12-01T00:00:00Z"), ["20261101:retired", "20261129:active"]);
    assert.deepEqual(await at("2026-12-08T00:00:00Z"), ["20261101:expired", "20261129:active"]);
    // A second rotation the same day picks a free selector.
    const [third] = await store.rotate("example.com", { now: t1 });
    assert.equal(third.selector, "20261129-2");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dnsRecord: the Ed25519 p= is the raw 32-byte key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [key] = await new DkimKeyStore(dir).generate("example.com", { algorithm: "ed25519" });
    const record = dnsRecord(key);
    assert.equal(record.name, `${key.selector}._domainkey.example.com`);
    const p = record.value.match(/^v=DKIM1; k=ed25519; p=(.+)$/)![1];
    assert.equal(Uint8Array.fromBase64(p).length, 32);
    assert.deepEqual(record.strings, [record.value]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
