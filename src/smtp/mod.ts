/**
 * The receiving side (Postfix's smtpd), in three layers: the protocol
 * (listeners, PROXY protocol, the session state machine with its typed
 * command table, the AUTH exchange, the parser, replies, the bounded
 * line/DATA reader), the policy (what a client may do, asked at each stage:
 * {@link SessionPolicy}, {@link SubmissionPolicy}) and the message sink (where
 * a message goes, with one commit: {@link SpoolSink}, {@link PassthroughSink}).
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
  type ConnectionGate,
  type GateOpenOptions,
  type GateTicket,
  type ListenerSpec,
  LocalConnectionGate,
  type LocalConnectionGateOptions,
  SmtpServer,
  type SmtpServerOptions,
} from "./server.ts";
export {
  type AbuseLimits,
  DEFAULT_ABUSE_LIMITS,
  type ListenerKind,
  Session,
  type SessionContext,
} from "./session.ts";
export {
  COMMAND_TABLE,
  type CommandFlags,
  type CommandOf,
  type CommandSpec,
  type CommandTable,
  type Verb,
  VerbCounters,
} from "./command_table.ts";
export type {
  MailVerdict,
  PolicyClient,
  PolicyTransaction,
  ReceivedMessage,
  SessionPolicy,
  Verdict,
} from "./policy.ts";
export {
  type HeaderFromPolicy,
  SubmissionPolicy,
  type SubmissionPolicyOptions,
} from "./submission_policy.ts";
export { type SigningOutcome, SigningSink, type SigningSinkOptions } from "./signing_sink.ts";
export type { MessageSink, SinkResult, SinkTransaction } from "./sink.ts";
export { type Handoff, SpoolSink, type SpoolSinkOptions } from "./spool_sink.ts";
export { PassthroughSink, type PassthroughSinkOptions } from "./passthrough_sink.ts";
