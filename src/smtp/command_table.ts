/**
 * The dispatcher table (Postfix's `smtpd_cmd_table`): every verb, the rules
 * that must hold before it runs, and its handler. The table carries the
 * rules, so the handlers hold none of the sequencing checks; and it is typed
 * per verb, so a handler that takes another verb's command fails `deno
 * check`.
 *
 * @module
 */
import type { Command } from "./commands.ts";
import { Replies, type SmtpReply } from "./replies.ts";

/** A command verb. */
export type Verb = Command["verb"];

/** The command type of one verb: `CommandOf<"MAIL">` has `address` and `params`. */
export type CommandOf<V extends Verb> = Extract<Command, { verb: V }>;

/** What the table's handlers run on: the session's protocol actions. */
export interface CommandHandlers {
  greet(command: CommandOf<"EHLO" | "HELO">): Promise<void>;
  startTls(command: CommandOf<"STARTTLS">): Promise<void>;
  auth(command: CommandOf<"AUTH">): Promise<void>;
  mail(command: CommandOf<"MAIL">): Promise<void>;
  rcpt(command: CommandOf<"RCPT">): Promise<void>;
  data(command: CommandOf<"DATA">): Promise<void>;
  reset(command: CommandOf<"RSET">): Promise<void>;
  quit(command: CommandOf<"QUIT">): void;
  forbidden(command: CommandOf<"FORBIDDEN">): void;
  invalid(command: CommandOf<"INVALID">): void;
  /** Queues a reply. */
  reply(reply: SmtpReply): void;
}

/** The rules checked before a verb's handler runs, in this order. */
export interface CommandFlags {
  /** Needs EHLO/HELO first (`503 5.5.1`). */
  requiresHelo?: boolean;
  /** Needs TLS; the reply when it is missing. */
  requiresTls?: () => SmtpReply;
  /** Needs an authenticated client; the reply when it is not. */
  requiresAuth?: () => SmtpReply;
  /** Not allowed while a MAIL transaction is open; the reply then. */
  outsideTransaction?: () => SmtpReply;
  /** Needs an open MAIL transaction (`503 5.5.1 need MAIL`). */
  requiresTransaction?: boolean;
  /**
   * Does no work toward a message: counted against the junk-command limit
   * while no transaction is open (Postfix's junk_command_limit).
   */
  junk?: boolean;
  /**
   * Must end a pipelined group (RFC 2920 section 3.1): its reply is sent at
   * once instead of waiting for more pipelined commands.
   */
  lastInGroup?: boolean;
  /** Name in the session's per-verb counters (the disconnect log line). */
  counter: string;
}

/** One verb's rules and handler. */
export interface CommandSpec<V extends Verb> extends CommandFlags {
  run(session: CommandHandlers, command: CommandOf<V>): Promise<void> | void;
}

/** A table with an entry for every verb (a missing verb fails the type check). */
export type CommandTable = { readonly [V in Verb]: CommandSpec<V> };

/** The submission server's commands. */
export const COMMAND_TABLE: CommandTable = {
  EHLO: { counter: "ehlo", junk: true, lastInGroup: true, run: (s, c) => s.greet(c) },
  HELO: { counter: "helo", junk: true, lastInGroup: true, run: (s, c) => s.greet(c) },
  STARTTLS: {
    counter: "starttls",
    requiresHelo: true,
    outsideTransaction: Replies.authInTransaction,
    lastInGroup: true,
    run: (s, c) => s.startTls(c),
  },
  AUTH: {
    counter: "auth",
    requiresHelo: true,
    requiresTls: Replies.encryptionRequired,
    outsideTransaction: Replies.authInTransaction,
    lastInGroup: true,
    run: (s, c) => s.auth(c),
  },
  MAIL: {
    counter: "mail",
    requiresHelo: true,
    requiresTls: Replies.tlsRequired,
    requiresAuth: Replies.authRequired,
    outsideTransaction: Replies.nestedMail,
    run: (s, c) => s.mail(c),
  },
  RCPT: {
    counter: "rcpt",
    requiresHelo: true,
    requiresTransaction: true,
    run: (s, c) => s.rcpt(c),
  },
  DATA: {
    counter: "data",
    requiresHelo: true,
    requiresTransaction: true,
    lastInGroup: true,
    run: (s, c) => s.data(c),
  },
  RSET: { counter: "rset", junk: true, run: (s, c) => s.reset(c) },
  NOOP: { counter: "noop", junk: true, lastInGroup: true, run: (s) => s.reply(Replies.noop()) },
  QUIT: { counter: "quit", lastInGroup: true, run: (s, c) => s.quit(c) },
  VRFY: { counter: "vrfy", junk: true, lastInGroup: true, run: (s) => s.reply(Replies.vrfy()) },
  HELP: { counter: "help", junk: true, run: (s) => s.reply(Replies.help()) },
  UNIMPLEMENTED: {
    counter: "unimplemented",
    run: (s, c) => s.reply(Replies.notImplemented(c.name)),
  },
  FORBIDDEN: { counter: "forbidden", run: (s, c) => s.forbidden(c) },
  UNKNOWN: { counter: "unknown", run: (s) => s.reply(Replies.unknownCommand()) },
  INVALID: { counter: "invalid", run: (s, c) => s.invalid(c) },
  BAD_BYTES: { counter: "unknown", run: (s) => s.reply(Replies.badCharacters()) },
};

/** What the table checks a command against. */
export interface SessionFacts {
  greeted: boolean;
  tls: boolean;
  authenticated: boolean;
  inTransaction: boolean;
}

/**
 * The reply that refuses `spec` in the session's present state, or `null`
 * when its handler may run. The checks run in the order of
 * {@link CommandFlags}.
 */
export function refusal(spec: CommandFlags, facts: SessionFacts): SmtpReply | null {
  if (spec.requiresHelo && !facts.greeted) return Replies.needEhlo();
  if (spec.requiresTls && !facts.tls) return spec.requiresTls();
  if (spec.requiresAuth && !facts.authenticated) return spec.requiresAuth();
  if (spec.outsideTransaction && facts.inTransaction) return spec.outsideTransaction();
  if (spec.requiresTransaction && !facts.inTransaction) return Replies.needMail();
  return null;
}

/** The table entry for a command, typed for that command's verb. */
export function specFor<V extends Verb>(
  table: CommandTable,
  command: CommandOf<V>,
): CommandSpec<V> {
  return table[command.verb as V];
}

/**
 * Per-verb counts of one session, for the disconnect line
 * (`ehlo=1 auth=0/1 mail=1 rcpt=2 data=1 quit=1 commands=6/7`): `ok/total`
 * where some failed, else the count.
 */
export class VerbCounters {
  #counts = new Map<string, { ok: number; total: number }>();

  /** Counts one command under `name`, successful or not. */
  record(name: string, ok: boolean): void {
    const entry = this.#counts.get(name) ?? { ok: 0, total: 0 };
    entry.total++;
    if (ok) entry.ok++;
    this.#counts.set(name, entry);
  }

  /** The counts in the order first seen, then the `commands=` total. */
  toString(): string {
    let ok = 0;
    let total = 0;
    const parts: string[] = [];
    for (const [name, entry] of this.#counts) {
      ok += entry.ok;
      total += entry.total;
      parts.push(`${name}=${format(entry.ok, entry.total)}`);
    }
    parts.push(`commands=${format(ok, total)}`);
    return parts.join(" ");
  }
}

function format(ok: number, total: number): string {
  return ok === total ? String(total) : `${ok}/${total}`;
}
