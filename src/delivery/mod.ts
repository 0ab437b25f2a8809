/**
 * The sending side (Postfix's smtp): the SMTP client, pooled connections per
 * backend, per-sender-domain routing, the `file:` backend for development,
 * and pass-through relaying.
 *
 * @example Build the backend `[relay]` describes
 * ```ts ignore
 * import { createDeliveryBackend } from "./mod.ts";
 * import { parseRelayConfig } from "../config/relay_schema.ts";
 *
 * const backend = await createDeliveryBackend(parseRelayConfig(config.relay), {
 *   hostname: config.server.hostname,
 * });
 * const outcomes = await backend.deliver(envelope, bytes, envelope.recipients);
 * await backend.close();
 * ```
 *
 * @module
 */
export { type DeliveryBackend, isStreamingBackend, type StreamingBackend } from "./backend.ts";
export {
  checkDeliveryConfig,
  createDeliveryBackend,
  type CreateDeliveryBackendOptions,
} from "./create.ts";
export { FileBackend } from "./file_backend.ts";
export { relayPassthrough } from "./passthrough.ts";
export { type PoolLease, type PoolStats, SmtpPool, type SmtpPoolOptions } from "./pool.ts";
export { parseRelayUrl, type RelayTarget, RelayUrlError } from "./relay_url.ts";
export { type RouteChoice, RoutingBackend, routingDomain } from "./routing.ts";
export { SmtpBackend, type SmtpBackendOptions } from "./smtp_backend.ts";
export {
  formatReply,
  isPermanent,
  isPositive,
  isTransient,
  type ServerReply,
  type SmtpAuthOptions,
  SmtpClient,
  type SmtpClientOptions,
  SmtpConnectionError,
  SmtpError,
  SmtpProtocolError,
  type SmtpRecipientResult,
  SmtpReplyError,
  type SmtpSecurity,
  type SmtpSendOptions,
  type SmtpSendOutcome,
  type SmtpSendParams,
  type SmtpSendResult,
  SmtpTimeoutError,
  type SmtpTimeouts,
  type SmtpTlsInfo,
} from "./smtp_client.ts";
