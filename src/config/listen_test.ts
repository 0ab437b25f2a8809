import assert from "node:assert/strict";
import { listenAddress, parseListen } from "./listen.ts";

Deno.test("listen addresses: host:port and [v6]:port, checked and split alike", () => {
  assert.deepEqual(parseListen("127.0.0.1:8465"), { hostname: "127.0.0.1", port: 8465 });
  assert.deepEqual(parseListen("[::1]:0"), { hostname: "::1", port: 0 });
  assert.deepEqual(parseListen("localhost:9000"), { hostname: "localhost", port: 9000 });
  assert.throws(() => parseListen("8465"), /invalid listen address/);
  assert.throws(() => parseListen("::1:25"), /invalid listen address/);
  assert.throws(() => parseListen("host:70000"), /invalid listen port/);
  const schema = listenAddress("127.0.0.1:8465");
  assert.equal(schema.safeParse("[::1]:25").success, true);
  assert.match(
    schema.safeParse("nope").error!.issues[0].message,
    /expected "host:port", e.g. "127.0.0.1:8465"/,
  );
});
