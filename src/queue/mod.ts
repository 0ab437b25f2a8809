/**
 * The queue (Postfix's cleanup + qmgr): the durable spool that holds a
 * message from its `250` until every recipient is done, the manager that
 * delivers, retries and bounces, DSNs and dead letters, and the
 * administration that `relay queue` runs beside a live server.
 *
 * @example Deliver what the spool holds
 * ```ts ignore
 * import { QueueManager, queueSettings, Spool } from "./mod.ts";
 *
 * const spool = await Spool.open(config.spool.dir);
 * const queue = new QueueManager({ spool, backend, audit, ...queueSettings(config) });
 * await queue.start(); // resumes whatever a previous run left
 * ```
 *
 * @module
 */
export {
  BODY_FILE_BYTES,
  encodeSpoolFile,
  isDiskFull,
  parseSpoolFile,
  Spool,
  type SpoolCommits,
  type SpooledMessage,
  type SpoolEntry,
  SpoolFullError,
  type SpoolOptions,
  type SpoolRequest,
  SpoolWriter,
} from "./spool.ts";
export {
  DEFAULT_RETRY_SCHEDULE,
  QueueManager,
  type QueueManagerOptions,
  type QueueManagerStats,
  queueSettings,
} from "./manager.ts";
export { type DeliveryState, FLUSH_ALL, readState, writeState } from "./state.ts";
export {
  buildDsn,
  type BuildDsnOptions,
  type Dsn,
  DSN_RETURN_LIMIT,
  dsnStatus,
  xtext,
} from "./dsn.ts";
export {
  type DeadLetterRecord,
  listDeadLetters,
  writeDeadLetter,
  type WriteDeadLetterOptions,
} from "./dead_letter.ts";
export {
  deleteMessage,
  listIds,
  listQueue,
  type QueueEntry,
  type QueueMessageDetail,
  type QueueStatistics,
  queueStatistics,
  requestRetry,
  showMessage,
} from "./admin.ts";
