/**
 * What several parts of the relay share and none owns: the message
 * envelope and queue ids, recipient outcomes, email addresses and domains,
 * message traits (8-bit, SMTPUTF8), durable file writes, RFC 5322
 * dates, and deadlines on one lazily re-armed timer. This folder imports nothing of ours, so every other folder may use
 * it without tying itself to another.
 *
 * @module
 */
export { type EmailAddress, normalizeDomain, parseEmail, sameDomain } from "./address.ts";
export { ChunkPipe } from "./chunk_pipe.ts";
export { rfc5322Date } from "./date.ts";
export { DeadlineTimer, type DeadlineTimerOptions, type TimerFunctions } from "./deadline_timer.ts";
export {
  denoFs,
  DirectorySync,
  type DurableFs,
  syncDirectory,
  writeFileDurably,
} from "./durable_file.ts";
export { type Envelope, isQueueId, newQueueId } from "./envelope.ts";
export {
  hasEightBitBytes,
  headerLength,
  isNonAscii,
  type MessageNeeds,
  messageNeeds,
} from "./message_traits.ts";
export type { RecipientOutcome, StreamedDelivery } from "./outcome.ts";
export { HEADER_BLOCK_LIMIT, HeaderBlockReader, headerFields } from "./header_block.ts";
export { type FromMailbox, parseFromMailbox } from "./header_from.ts";
export { SPILL_MEMORY_BYTES, SpillBuffer } from "./spill_buffer.ts";
