/**
 * The SMTP AUTH exchange (RFC 4954): runs a SASL mechanism over 334
 * challenges, checks the resulting credentials (password or bearer token)
 * through the authenticators, applies the login rate limits, and answers
 * 235, 535, 454 or 421. Secrets never reach a log or the audit trail.
 *
 * @module
 */
import { parseEmail } from "../mail/mod.ts";
import type {
  AuthResult,
  BearerAuthenticator,
  PasswordAuthenticator,
} from "../auth/authenticator.ts";
import { log } from "../observability/logger.ts";
import type {
  Lockout,
  LockoutRefusal,
  LoginAttempt,
  LoginOutcome,
  LoginTicket,
} from "../policy/lockout.ts";
import type { CredentialFingerprinter } from "../policy/rate_limit.ts";
import { createLogin } from "../sasl/login.ts";
import type { SaslCredentials, SaslMechanism } from "../sasl/mechanism.ts";
import { createPlain } from "../sasl/plain.ts";
import { Replies, type SmtpReply } from "./replies.ts";
import { StateUnavailableError } from "../state/mod.ts";

const logger = log("smtp");

/** A SASL mechanism factory offered in addition to PLAIN and LOGIN. */
export interface MechanismSpec {
  create: () => SaslMechanism;
}

/** What the exchange needs from the server's configuration. */
export interface AuthContext {
  /** Checks passwords; refuses users of disabled domains itself (`domain_disabled`). */
  authenticator: PasswordAuthenticator;
  /** Verifies OAuth2 bearer tokens; XOAUTH2/OAUTHBEARER are offered only with it. */
  bearer?: BearerAuthenticator;
  /** Extra SASL mechanisms (XOAUTH2, OAUTHBEARER), by name. */
  bearerMechanisms?: Record<string, MechanismSpec>;
  /** Builds the failure challenge sent before 535 for a bearer mechanism. */
  bearerFailureChallenge?: (mechanism: string, status: string, scope: string) => Uint8Array;
  /** Login lockouts (pair, address, account, token, domain slow-down). */
  lockout?: Pick<Lockout, "admitAddress" | "begin">;
  /** Keyed fingerprints of wrong passwords (a repeated stale password counts once). */
  fingerprint?: CredentialFingerprinter;
}

/** What the exchange needs from the session it runs in. */
export interface AuthPort {
  /** The client's address (rate limits, audit). */
  readonly ip: string;
  /** Queues a reply. */
  reply(reply: SmtpReply): void;
  /** Flushes replies and reads the client's next SASL response line, base64-decoded. */
  readResponse(): Promise<Uint8Array | "cancel" | "bad" | "eof" | "too_long">;
  /** Records an audit event (the session adds its id and address). */
  audit(event: string, fields: Record<string, unknown>): void;
  /** The policy's last word on a verified identity, before `235`: `null` to accept. */
  approve(identity: AuthenticatedIdentity): Promise<SmtpReply | null>;
}

/** Who the client turned out to be. */
export interface AuthenticatedIdentity {
  email: string;
  domain: string;
  mechanism: string;
}

/** The names of the mechanisms offered (after TLS). */
export function mechanismNames(ctx: AuthContext): string[] {
  return ["PLAIN", "LOGIN", ...Object.keys(ctx.bearerMechanisms ?? {})];
}

/** Decodes strict base64 (RFC 4648 alphabet, padding required); `null` when invalid. */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  try {
    return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    return null;
  }
}

/**
 * Runs `AUTH <mechanism> [initial-response]` to its end. Resolves the
 * identity after `235`, or `null` after any other reply (or when the client
 * went away mid-exchange).
 */
export async function runAuthExchange(
  port: AuthPort,
  ctx: AuthContext,
  command: { mechanism: string; initial: string | null },
): Promise<AuthenticatedIdentity | null> {
  const early = await ctx.lockout?.admitAddress(port.ip).catch((error) => {
    storeDown(error);
    return "unavailable" as const;
  });
  if (early === "unavailable") {
    // The shared state is unreachable and `[state] fail = "closed"`: no login now.
    port.reply(Replies.authTemporaryFailure());
    return null;
  }
  if (early) {
    refuse(port, early, "");
    return null;
  }
  const mechanism = createMechanism(ctx, command.mechanism);
  if (!mechanism) {
    port.reply(Replies.authMechanismUnknown());
    return null;
  }
  let initial: Uint8Array | null = null;
  if (command.initial !== null) {
    initial = command.initial === "=" ? new Uint8Array() : decodeBase64(command.initial);
    if (initial === null) {
      port.reply(Replies.authBadBase64());
      return null;
    }
  }
  let step = mechanism.start(initial);
  while (step.type === "challenge") {
    port.reply(Replies.authChallenge(step.challenge.toBase64()));
    const response = await port.readResponse();
    if (response === "eof") return null;
    if (response === "cancel") {
      port.reply(Replies.authCancelled());
      return null;
    }
    if (response === "bad") {
      port.reply(Replies.authBadBase64());
      return null;
    }
    if (response === "too_long") {
      port.reply(Replies.authLineTooLong());
      return null;
    }
    step = mechanism.next(response);
  }
  if (step.type === "malformed") {
    port.reply(Replies.authMalformed(step.message));
    return null;
  }
  return await verify(port, ctx, mechanism.name, step.credentials);
}

/** Audits a lockout refusal (`rate_limit` naming its scope) and replies 421. */
function refuse(port: AuthPort, refusal: LockoutRefusal, email: string): void {
  port.audit("rate_limit", {
    email: email.slice(0, 254) || undefined,
    scope: refusal.scope,
    action: "refused",
    retry_after: refusal.retryAfterSeconds,
  });
  port.reply(Replies.authRateLimited(refusal.retryAfterSeconds));
}

/**
 * Reserves an attempt with the lockout: `null` after a refusal (replied and
 * audited); a slowed-down attempt waits here first.
 */
async function admit(
  port: AuthPort,
  ctx: AuthContext,
  attempt: LoginAttempt,
): Promise<LoginTicket | "unlimited" | null> {
  const lockout = ctx.lockout;
  if (!lockout) return "unlimited";
  const decision = await lockout.begin(attempt).catch(storeDown);
  if (decision === null) {
    // The shared state is unreachable and `[state] fail = "closed"`: no login now.
    port.reply(Replies.authTemporaryFailure());
    return null;
  }
  if (!decision.allowed) {
    refuse(port, decision, attempt.account);
    return null;
  }
  if (decision.delayMs > 0) {
    port.audit("rate_limit", {
      email: attempt.account.slice(0, 254),
      scope: decision.scope,
      action: "delayed",
      delay_ms: decision.delayMs,
    });
    await new Promise((resolve) => setTimeout(resolve, decision.delayMs));
  }
  return decision;
}

/** A limiter whose shared state is unreachable (`[state] fail = "closed"`): `null`, logged. */
function storeDown(error: unknown): null {
  if (!(error instanceof StateUnavailableError)) throw error;
  logger.warning("AUTH refused for now: {error}", { error: error.message });
  return null;
}

function createMechanism(ctx: AuthContext, name: string): SaslMechanism | null {
  if (name === "PLAIN") return createPlain();
  if (name === "LOGIN") return createLogin();
  return ctx.bearerMechanisms?.[name]?.create() ?? null;
}

/** Checks the credentials a mechanism produced; the identity on success. */
async function verify(
  port: AuthPort,
  ctx: AuthContext,
  mechanism: string,
  credentials: SaslCredentials,
): Promise<AuthenticatedIdentity | null> {
  const auditBase = { method: mechanism };
  if (credentials.kind === "password") {
    const { authcid, authzid, password } = credentials;
    if (authzid !== "" && authzid.toLowerCase() !== authcid.toLowerCase()) {
      port.audit("auth_attempt", {
        ...auditBase,
        email: authcid,
        success: false,
        reason: "authzid",
      });
      port.reply(Replies.authzidMismatch());
      return null;
    }
    const ticket = await admit(port, ctx, {
      ip: port.ip,
      account: authcid,
      kind: "password",
      credentialFingerprint: ctx.fingerprint?.fingerprint(authcid, password),
    });
    if (!ticket) return null;
    let result;
    try {
      result = await ctx.authenticator.verifyPassword(authcid, password);
    } catch (error) {
      logger.error("authenticator failed: {error}", { error: String(error) });
      result = { ok: false as const, reason: "temporary_failure" as const };
    }
    return await finishAuth(port, mechanism, authcid, result, ticket);
  }
  const bearer = ctx.bearer;
  if (!bearer) {
    port.reply(Replies.authMechanismUnknown());
    return null;
  }
  const ticket = await admit(port, ctx, {
    ip: port.ip,
    account: credentials.user ?? "",
    kind: "token",
  });
  if (!ticket) return null;
  let result;
  try {
    result = await bearer.verifyBearer(credentials.user, credentials.token);
  } catch (error) {
    logger.error("token verification failed: {error}", { error: String(error) });
    result = { ok: false as const, reason: "temporary_failure" as const };
  }
  port.audit("token_validation", {
    method: mechanism,
    format: credentials.format,
    email: (result.ok ? result.email : credentials.user ?? "").slice(0, 254),
    success: result.ok,
    ...(result.ok ? {} : {
      reason: result.reason,
      status: "status" in result ? result.status : undefined,
      detail: result.detail,
    }),
  });
  if (!result.ok && result.reason !== "temporary_failure" && ctx.bearerFailureChallenge) {
    // RFC 7628 3.2.2 / Google XOAUTH2: a 334 with the error, the client answers, then 535.
    const status = "status" in result && result.status ? result.status : "invalid_token";
    const scope = "scope" in result && result.scope ? result.scope : "smtp.send";
    const challenge = ctx.bearerFailureChallenge(mechanism, status, scope);
    port.reply(Replies.authChallenge(challenge.toBase64()));
    const response = await port.readResponse().catch(async (error) => {
      await settle(port, ticket, "failure", "");
      throw error;
    });
    if (response === "eof") {
      await settle(port, ticket, "failure", "");
      return null;
    }
  }
  return await finishAuth(port, mechanism, credentials.user ?? "", result, ticket);
}

/** Settles a reservation and audits the blocks it set; the refusal the next attempt gets. */
async function settle(
  port: AuthPort,
  ticket: LoginTicket | "unlimited",
  outcome: LoginOutcome,
  user: string,
): Promise<LockoutRefusal | "unavailable" | null> {
  if (ticket === "unlimited") return null;
  const finished = await ticket.finish(outcome).catch(storeDown);
  if (finished === null) return "unavailable";
  const { blocks, next } = finished;
  for (const block of blocks) {
    port.audit("rate_limit", {
      email: user.slice(0, 254) || undefined,
      scope: block.scope,
      action: "blocked",
      block_seconds: block.seconds,
    });
  }
  return next;
}

/** Replies, audits and counts the outcome of a verification. */
async function finishAuth(
  port: AuthPort,
  mechanism: string,
  user: string,
  result: AuthResult,
  ticket: LoginTicket | "unlimited",
): Promise<AuthenticatedIdentity | null> {
  if (result.ok) {
    const identity = { email: result.email, domain: result.domain, mechanism };
    let refused: SmtpReply | null;
    try {
      refused = await port.approve(identity);
    } catch (error) {
      await settle(port, ticket, "neutral", user);
      throw error;
    }
    port.audit("auth_attempt", {
      method: mechanism,
      email: result.email,
      domain: result.domain,
      backend: result.backend,
      success: refused === null,
      ...(refused ? { reason: "policy" } : {}),
    });
    // The credentials were right either way: not a guess.
    const settled = await settle(port, ticket, refused ? "neutral" : "success", user);
    if (refused) {
      port.reply(refused);
      return null;
    }
    if (settled === "unavailable") {
      // The shared state went away meanwhile and `fail = "closed"`: no login now.
      port.reply(Replies.authTemporaryFailure());
      return null;
    }
    port.reply(Replies.authSucceeded());
    return identity;
  }
  port.audit("auth_attempt", {
    method: mechanism,
    email: user.slice(0, 254),
    domain: parseEmail(user)?.domain,
    success: false,
    reason: result.reason,
    detail: result.detail,
  });
  switch (result.reason) {
    case "temporary_failure":
      port.reply(Replies.authTemporaryFailure());
      break;
    case "domain_disabled":
      port.reply(Replies.authDomainDisabled(parseEmail(user)?.domain ?? ""));
      break;
    default:
      port.reply(Replies.authFailed());
  }
  const guessed = result.reason === "invalid_credentials" || result.reason === "account_disabled";
  const next = await settle(port, ticket, guessed ? "failure" : "neutral", user);
  if (next && next !== "unavailable") refuse(port, next, user);
  return null;
}
