import assert from "node:assert/strict";
import { BUNDLE_MODULE, renderHashWorkerBundle } from "../../scripts/bundle_hash_worker.ts";
import { HASH_WORKER_BASE64 } from "./hash_worker_bundle.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test("the bundled hash worker matches src/auth/hash_worker.ts and its imports (else: deno task bundle-worker)", async () => {
  const fresh = await renderHashWorkerBundle(root);
  const committed = await Deno.readTextFile(`${root}${BUNDLE_MODULE}`);
  assert.ok(
    fresh === committed,
    `${BUNDLE_MODULE} is stale: run \`deno task bundle-worker\` and commit it`,
  );
});

Deno.test("the bundled hash worker is one module: no imports but node: built-ins", () => {
  const source = new TextDecoder().decode(Uint8Array.fromBase64(HASH_WORKER_BASE64));
  const imports = [...source.matchAll(/\bfrom\s*"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(imports.length > 0);
  assert.deepEqual(imports.filter((specifier) => !specifier.startsWith("node:")), []);
});
