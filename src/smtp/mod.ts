/**
 * The receiving side (Postfix's smtpd): SMTPS and submission listeners,
 * PROXY protocol, the session state machine with its dispatcher table, the
 * AUTH exchange, the command parser, replies, and the bounded line/DATA
 * reader.
 *
 * @module
 */
export {
  type AuthContext,
  type AuthenticatedIdentity,
  type AuthPort,
  decodeBase64,
  type MechanismSpec,
  runAuthExchange,
} from "./auth_exchange.ts";
export { type ByteStream, SocketStream, StreamTimeoutError, type TlsInfo } from "./byte_stream.ts";
export { type Command, type MailParams, parseCommand } from "./commands.ts";
export { DataDecoder } from "./data_decoder.ts";
export { LineReader } from "./line_reader.ts";
export { type ProxyListenerOptions, TrustedProxies } from "./proxy_protocol.ts";
export { receivedHeader } from "./received.ts";
export { formatReply, Replies, type SmtpReply } from "./replies.ts";
export {
  type BoundListener,
  type ListenerSpec,
  SmtpServer,
  type SmtpServerOptions,
} from "./server.ts";
export {
  type AbuseLimits,
  COMMAND_TABLE,
  DEFAULT_ABUSE_LIMITS,
  type ListenerKind,
  Session,
  type SessionContext,
} from "./session.ts";
