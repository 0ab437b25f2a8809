import assert from "node:assert/strict";
import { renderWorkerBundle, SPOOL_WORKER } from "../../scripts/bundle_hash_worker.ts";
import { SPOOL_WORKER_BASE64 } from "./spool_worker_bundle.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test("the bundled spool writer matches src/queue/spool_worker.ts and its imports (else: deno task bundle-worker)", async () => {
  const fresh = await renderWorkerBundle(root, SPOOL_WORKER);
  const committed = await Deno.readTextFile(`${root}${SPOOL_WORKER.module}`);
  assert.ok(
    fresh === committed,
    `${SPOOL_WORKER.module} is stale: run \`deno task bundle-worker\` and commit it`,
  );
});

Deno.test("the bundled spool writer is one module: no imports but node: built-ins", () => {
  const source = new TextDecoder().decode(Uint8Array.fromBase64(SPOOL_WORKER_BASE64));
  const imports = [...source.matchAll(/\bfrom\s*"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(imports.includes("node:sqlite"));
  assert.deepEqual(imports.filter((specifier) => !specifier.startsWith("node:")), []);
});
