import assert from "node:assert/strict";
import {
  renderSessionWorkerBundle,
  SESSION_BUNDLE_MODULE,
} from "../../scripts/bundle_hash_worker.ts";
import { SESSION_WORKER_BASE64 } from "./session_worker_bundle.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test("the bundled session worker matches src/workers/session_worker.ts and its imports (else: deno task bundle-worker)", async () => {
  const fresh = await renderSessionWorkerBundle(root);
  const committed = await Deno.readTextFile(`${root}${SESSION_BUNDLE_MODULE}`);
  assert.ok(
    fresh === committed,
    `${SESSION_BUNDLE_MODULE} is stale: run \`deno task bundle-worker\` and commit it`,
  );
});

Deno.test("the bundled session worker is one module: no imports but node: built-ins", () => {
  const source = new TextDecoder().decode(Uint8Array.fromBase64(SESSION_WORKER_BASE64));
  const imports = [...source.matchAll(/\bfrom\s*"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(imports.length > 0);
  assert.deepEqual(imports.filter((specifier) => !specifier.startsWith("node:")), []);
});
