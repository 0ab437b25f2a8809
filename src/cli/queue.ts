/**
 * `relay queue ...`: look at and act on the delivery queue, also while the
 * server runs (the command opens the spool database beside the server's
 * writer; the server notices retries and deletes within
 * `relay.scan_interval` seconds).
 *
 * ```text
 * relay queue list [--json]        every queued message (Postfix's mailq)
 * relay queue show ID [--json]     one message: envelope, outcome per recipient, header
 * relay queue retry ID|--all       retry now instead of at the scheduled time
 * relay queue delete ID            remove a message without delivering it
 * relay queue stats [--json]       counts, sizes, oldest message, dead letters
 * ```
 *
 * `--spool DIR` works on another spool than `[spool] dir`: a dead node's,
 * copied or mounted on a host that is still up.
 *
 * @module
 */
import { isQueueId } from "../mail/mod.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Config } from "../config/mod.ts";
import { parseRelayConfig } from "../config/relay_schema.ts";
import {
  deleteMessage,
  FLUSH_ALL,
  listQueue,
  type QueueEntry,
  queueStatistics,
  requestRetry,
  showMessage,
  Spool,
} from "../queue/mod.ts";

/** Where the command writes (injectable for tests). */
export interface QueueCommandOptions {
  /** One line of results; default standard output. */
  stdout?: (line: string) => void;
  /** One line of errors; default standard error. */
  stderr?: (line: string) => void;
  /** The clock, for ages (default `Date.now`). */
  now?: () => number;
}

const USAGE = [
  "usage: relay queue list [--json]",
  "       relay queue show ID [--json]",
  "       relay queue retry ID|--all",
  "       relay queue delete ID",
  "       relay queue stats [--json]",
  "  --spool DIR   another spool than [spool] dir (a dead node's)",
].join("\n");

function formatSize(bytes: number): string {
  if (bytes < 10 * 1024) return `${bytes}`;
  if (bytes < 10 * 1024 * 1024) return `${Math.round(bytes / 1024)}K`;
  return `${Math.round(bytes / 1024 / 1024)}M`;
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

function listLines(entries: QueueEntry[]): string[] {
  const lines = [`${"ID".padEnd(26)} ${"SIZE".padStart(7)}  ${"ARRIVED".padEnd(20)} SENDER`];
  for (const e of entries) {
    const arrived = e.receivedAt.replace("T", " ").slice(0, 19);
    lines.push(
      `${e.id.padEnd(26)} ${formatSize(e.size).padStart(7)}  ${arrived.padEnd(20)} <${e.from}>`,
    );
    if (e.status === "deferred") {
      lines.push(
        `${" ".repeat(36)}attempts ${e.attempts}, next ${e.nextAttempt ?? "?"}` +
          (e.lastError ? `: ${e.lastError.slice(0, 160)}` : ""),
      );
    }
    for (const r of e.pending) lines.push(`${" ".repeat(36)}${r}`);
  }
  const bytes = entries.reduce((n, e) => n + e.size, 0);
  lines.push(`-- ${Math.ceil(bytes / 1024)} KiB in ${entries.length} message(s)`);
  return lines;
}

/** Runs `relay queue ARGS`; resolves with the exit code. */
export async function runQueueCommand(
  args: string[],
  config: Config,
  options: QueueCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  const now = options.now ?? Date.now;
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        all: { type: "boolean", default: false },
        spool: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    err(`relay queue: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const spoolDir = values.spool ?? config.spool.dir;
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined) {
    (values.help ? out : err)(USAGE);
    return values.help ? 0 : 2;
  }
  const relay = parseRelayConfig(config.relay);
  let spool: Spool;
  try {
    spool = await Spool.attach(spoolDir);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const legacy = await Deno.stat(join(spoolDir, "queue")).then(() => true, () => false);
    if (legacy) {
      // A spool of the file-per-message format: the relay imports it when it starts.
      err(
        `relay queue: ${spoolDir} is a spool of an earlier version; start the relay once to import it`,
      );
      return 1;
    }
    if (sub === "list" || sub === "stats") {
      // No spool yet: an empty queue.
      if (values.json) out(sub === "list" ? "[]" : JSON.stringify({ messages: 0 }));
      else out(`spool ${spoolDir} does not exist yet: the queue is empty`);
      return 0;
    }
    err(`relay queue: no spool at ${spoolDir}`);
    return 1;
  }
  const needId = (): string | null => {
    const id = rest[0];
    if (id === undefined || rest.length > 1) {
      err(`relay queue ${sub}: expected one queue ID\n${USAGE}`);
      return null;
    }
    if (!isQueueId(id)) {
      err(`relay queue ${sub}: ${JSON.stringify(id.slice(0, 40))} is not a queue ID`);
      return null;
    }
    return id;
  };

  const dispatch = async (): Promise<number> => {
    switch (sub) {
      case "list": {
        const entries = await listQueue(spool);
        if (values.json) out(JSON.stringify(entries));
        else for (const line of listLines(entries)) out(line);
        return 0;
      }
      case "show": {
        const id = needId();
        if (id === null) return 2;
        const detail = await showMessage(spool, id);
        if (!detail) {
          err(`relay queue show: ${id} is not in the queue`);
          return 1;
        }
        if (values.json) {
          out(JSON.stringify(detail));
          return 0;
        }
        out(`id:          ${detail.id}`);
        out(`status:      ${detail.status}`);
        out(`received:    ${detail.receivedAt}`);
        out(`from:        <${detail.from}>`);
        if (detail.user) out(`user:        ${detail.user}`);
        out(`client:      ${detail.envelope.client.address} (${detail.envelope.client.helo})`);
        out(`size:        ${detail.size}`);
        out(`attempts:    ${detail.attempts}`);
        if (detail.nextAttempt) out(`next:        ${detail.nextAttempt}`);
        out("recipients:");
        for (const [r, o] of Object.entries(detail.outcomes)) {
          out(`  ${r}: ${o.status}${"reply" in o ? ` (${o.reply})` : ""}`);
        }
        out("header:");
        for (const line of detail.headers.split("\n")) out(`  ${line}`);
        return 0;
      }
      case "retry": {
        if (values.all) {
          if (rest.length > 0) {
            err(`relay queue retry: --all takes no ID\n${USAGE}`);
            return 2;
          }
          await requestRetry(spool, FLUSH_ALL);
          out(
            `retry of every deferred message requested; a running relay starts within ` +
              `${relay.scan_interval}s`,
          );
          return 0;
        }
        const id = needId();
        if (id === null) return 2;
        if (!(await requestRetry(spool, id))) {
          err(`relay queue retry: ${id} is not in the queue`);
          return 1;
        }
        out(`retry of ${id} requested; a running relay starts within ${relay.scan_interval}s`);
        return 0;
      }
      case "delete": {
        const id = needId();
        if (id === null) return 2;
        if (!(await deleteMessage(spool, id))) {
          err(`relay queue delete: ${id} is not in the queue`);
          return 1;
        }
        out(`deleted ${id} (a delivery already under way may still complete)`);
        return 0;
      }
      case "stats": {
        const deadDir = relay.dead_letter_dir ?? join(spoolDir, "dead");
        const stats = await queueStatistics(spool, deadDir, now());
        if (values.json) {
          out(JSON.stringify(stats));
          return 0;
        }
        out(`messages:     ${stats.messages} (${stats.new} new, ${stats.deferred} deferred)`);
        out(`size:         ${stats.bytes} bytes`);
        out(`recipients:   ${stats.recipients} pending`);
        out(`oldest:       ${stats.messages > 0 ? formatAge(stats.oldestSeconds) : "-"}`);
        out(`dead letters: ${stats.deadLetters} in ${deadDir}`);
        for (const d of stats.byDomain) out(`  ${String(d.recipients).padStart(6)}  ${d.domain}`);
        return 0;
      }
      default:
        err(`relay queue: unknown command ${JSON.stringify(sub)}\n${USAGE}`);
        return 2;
    }
  };
  try {
    return await dispatch();
  } finally {
    await spool.close();
  }
}
