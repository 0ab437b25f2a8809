/**
 * Logging off the hot path: `relay serve` batches its log lines (one write
 * per batch, see src/observability/log_sink.ts), and a clean stop (SIGTERM)
 * still writes every line, up to the last one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RawClient } from "./support/raw_client.ts";
import { freePort } from "./support/ports.ts";
import { serveConfig, startServe } from "./support/serve_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("relay serve: the lines logged just before a SIGTERM are all in the output, 'stopped' last", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay_logging_" });
  const port = freePort();
  const configPath = join(dir, "relay.toml");
  await Deno.writeTextFile(configPath, serveConfig(dir, { listener: "submission", port }));
  const relay = await startServe({
    args: ["-A", MAIN, "serve", "--config", configPath],
    cwd: ROOT,
  });
  try {
    // Each session logs one `disconnect from [127.0.0.1] ...` line at info when it ends.
    const sessions = 25;
    for (let i = 0; i < sessions; i++) {
      const client = await RawClient.connect({ port });
      assert.equal((await client.reply()).code, 220);
      await client.command("QUIT");
      await client.readAll();
      client.close();
    }
    // No waiting for the batches: the stop must write whatever is still buffered.
    assert.equal((await relay.stop()).code, 0, relay.output());
    const records = relay.output().trim().split("\n").map((line) => JSON.parse(line));
    const disconnects = records.filter((r) => r.message.startsWith("disconnect from [127.0.0.1]"));
    assert.equal(disconnects.length, sessions, relay.output());
    assert.match(records.at(-2).message, /^SIGTERM: shutting down/);
    assert.equal(records.at(-1).message, "stopped");
  } finally {
    await relay[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
