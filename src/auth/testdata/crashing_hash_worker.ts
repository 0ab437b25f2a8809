/**
 * A hash worker for tests that crashes (an uncaught error) on the password
 * `crash-now` and otherwise behaves like the real one.
 *
 * @module
 */
import { type HashRequest, type HashResponse, runHashJob } from "../hash_worker.ts";

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<HashRequest>) => void) | null;
  postMessage(message: HashResponse): void;
};

scope.onmessage = (event) => {
  if (event.data.password === "crash-now") throw new Error("simulated worker crash");
  runHashJob(event.data).then((response) => scope.postMessage(response));
};
