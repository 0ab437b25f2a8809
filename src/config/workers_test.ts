import assert from "node:assert/strict";
import { ConfigError, parseConfig, sessionWorkerCount } from "./mod.ts";

Deno.test('server.workers: 1 by default, "auto" or a number of threads, errors name the key', () => {
  assert.equal(parseConfig({}).server.workers, 1);
  assert.equal(parseConfig({ server: { workers: "auto" } }).server.workers, "auto");
  assert.equal(parseConfig({ server: { workers: 3 } }).server.workers, 3);
  for (const bad of [0, 1.5, "many", 257]) {
    assert.throws(
      () => parseConfig({ server: { workers: bad } }, "relay.toml"),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.issues.some((i) =>
          i.key === "server.workers" && /"auto" or a number of threads/.test(i.message)
        ),
      String(bad),
    );
  }
});

Deno.test('server.workers: "auto" is the number of cores, at least one', () => {
  assert.equal(sessionWorkerCount("auto", 4), 4);
  assert.equal(sessionWorkerCount("auto", 0), 1);
  assert.equal(sessionWorkerCount("auto"), navigator.hardwareConcurrency);
  assert.equal(sessionWorkerCount(1, 8), 1);
  assert.equal(sessionWorkerCount(6, 2), 6);
});
