import assert from "node:assert/strict";
import { Cleanups } from "./cleanups.ts";

Deno.test("Cleanups: newest first, a failing step does not stop the others, each runs once", async () => {
  const ran: string[] = [];
  const errors: unknown[] = [];
  const cleanups = new Cleanups((error) => errors.push(error));
  cleanups.push(() => void ran.push("tls"));
  cleanups.push(async () => {
    await Promise.resolve();
    ran.push("audit");
  });
  cleanups.push(() => {
    throw new Error("backend close failed");
  });
  cleanups.push(() => void ran.push("listeners"));
  await cleanups.run();
  assert.deepEqual(ran, ["listeners", "audit", "tls"]);
  assert.equal(errors.length, 1);
  await cleanups.run();
  assert.deepEqual(ran, ["listeners", "audit", "tls"], "nothing runs twice");
});
