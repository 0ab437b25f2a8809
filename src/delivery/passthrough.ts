/**
 * Pass-through mode: relay one transaction to the backend while the client
 * is still sending it, and give the client the backend's own final reply
 * instead of queueing first.
 *
 * The message is read from `source` as it arrives and streamed, dot-stuffed,
 * over a pooled connection of the sender's route. `source` is always read to
 * its end (also when the backend refused the envelope), so the caller's DATA
 * reader stays in step with its client. Recipients the backend did not take
 * are in `recipients` with status `deferred` or `failed`: the caller must
 * not drop them silently (queue the message for them, or answer with the
 * failure).
 *
 * A session reads DATA by pushing chunks (`onBytes`, then `drain()` for
 * back-pressure); `ChunkPipe` (`mail/`) turns that into the async source
 * this function pulls from.
 *
 * @example In a session's DATA handler
 * ```ts ignore
 * const pipe = new ChunkPipe();
 * const relayed = relayPassthrough(backend, envelope, pipe);
 * pipe.push(receivedHeaderBytes);
 * const read = await reader.readData((bytes) => pipe.push(bytes), () => pipe.drain());
 * pipe.end(read.complete ? undefined : new Error("client went away"));
 * const result = await relayed; // result.reply: the backend's own final reply
 * ```
 *
 * @module
 */
import type { Envelope, StreamedDelivery } from "../mail/mod.ts";
import { type DeliveryBackend, isStreamingBackend } from "./backend.ts";
import { RoutingBackend } from "./routing.ts";

/**
 * Relays one transaction through the route of its sender and returns the
 * backend's final reply with the outcome per recipient.
 *
 * @param backend the relay's backend (a routing backend, an SMTP backend, or a file backend)
 * @param envelope sender and recipients; `id` names the transaction in logs
 * @param source the message bytes as they arrive (headers first, CRLF line ends, not dot-stuffed)
 * @throws whatever `source` throws (the client went away); nothing is delivered then
 */
export async function relayPassthrough(
  backend: DeliveryBackend,
  envelope: Envelope,
  source: AsyncIterable<Uint8Array>,
): Promise<StreamedDelivery> {
  const target = backend instanceof RoutingBackend ? backend.routeFor(envelope).backend : backend;
  if (isStreamingBackend(target)) return await target.stream(envelope, source);
  // Backends that need the whole message (file:): collect, then deliver.
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of source) {
    chunks.push(chunk);
    length += chunk.length;
  }
  const data = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  const outcomes = await target.deliver(envelope, data, envelope.recipients);
  const failed = outcomes.find((o) => o.status !== "delivered");
  const code = failed ? (failed.status === "failed" ? 554 : 451) : 250;
  const enhanced = failed?.enhanced ?? (failed ? `${String(code)[0]}.0.0` : "2.0.0");
  return {
    reply: { code, enhanced, text: failed ? failed.reply : `Ok: relayed as ${envelope.id}` },
    recipients: outcomes,
  };
}
