/**
 * The relay's command line: `relay <command> [--config FILE] ...`.
 *
 *   serve                 run the relay (default command of `deno task start`)
 *   check                 validate the configuration and print every error
 *   user add|passwd|remove|list   manage password-file users
 *   certs generate|show   development CA and server certificate
 *   queue list|show|retry|delete|stats   the delivery queue (also while serving)
 *   oauth login|keys|hash-secret   the embedded OAuth2 server's tools
 *   dkim generate|dns|list|rotate   DKIM signing keys and their DNS records
 *   limits show|clear ADDRESS|ACCOUNT   login lockouts of the running relay
 *
 * `relay --help`, `relay --version` and `--help` after any command or
 * subcommand are answered before the configuration is read (src/cli/help.ts).
 *
 * @module
 */
import { runCertsCommand } from "./src/cli/certs.ts";
import { commandHelp, mainHelp, versionText } from "./src/cli/help.ts";
import { runDkimCommand } from "./src/cli/dkim.ts";
import { loadCheckedConfig, runCheck } from "./src/cli/check.ts";
import { runQueueCommand } from "./src/cli/queue.ts";
import { runOAuthCommand } from "./src/cli/oauth.ts";
import { runLimitsCommand } from "./src/cli/limits.ts";
import { runServe } from "./src/cli/serve.ts";
import { runUserCommand } from "./src/cli/user.ts";
import { ConfigError, loadConfig } from "./src/config/mod.ts";
import { setupLogging, teardownLogging } from "./src/observability/logger.ts";

/** Removes `--config FILE` / `--config=FILE` from argv and returns it. */
function takeConfigFlag(args: string[]): { path: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let path: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--config" || arg === "-c") {
      path = args[++i];
      if (path === undefined) throw new Error("--config needs a file name");
    } else if (arg.startsWith("--config=")) {
      path = arg.slice("--config=".length);
    } else {
      rest.push(arg);
    }
  }
  return { path, rest };
}

async function main(argv: string[]): Promise<number> {
  const { path, rest } = takeConfigFlag(argv);
  const [command, ...args] = rest;
  if (command === undefined) {
    console.error(mainHelp());
    return 2;
  }
  if (command === "--version" || command === "-V" || command === "version") {
    console.log(versionText());
    return 0;
  }
  // Help is answered before the config is read or anything starts.
  const topic = command === "help" || command === "--help" || command === "-h"
    ? args.filter((word) => !word.startsWith("-"))
    : args.some((word) => word === "--help" || word === "-h")
    ? [command, ...args.filter((word) => !word.startsWith("-"))]
    : null;
  if (topic !== null) {
    if (topic.length === 0) {
      console.log(mainHelp());
      return 0;
    }
    const page = commandHelp(topic[0], topic[1]);
    if (page === null) {
      console.error(`relay: unknown command ${JSON.stringify(topic[0])}\n\n${mainHelp()}`);
      return 2;
    }
    console.log(page);
    return 0;
  }
  if (command === "check") return await runCheck(path);
  // serve runs every check of `relay check` first and reports all problems at once.
  const { config, path: used } = command === "serve"
    ? await loadCheckedConfig(path)
    : await loadConfig(path);
  await setupLogging(config.log);
  try {
    switch (command) {
      case "serve":
        return await runServe(config, used);
      case "user":
        return args.includes("--ldap")
          // Loaded on use: npm ldapts stays out of every other command's memory.
          ? await (await import("./src/cli/user_ldap.ts")).runLdapUserCommand(args, config.ldap)
          : await runUserCommand(args, config);
      case "certs":
        return await runCertsCommand(args, config);
      case "queue":
        return await runQueueCommand(args, config);
      case "oauth":
        return await runOAuthCommand(args, config);
      case "dkim":
        return await runDkimCommand(args, config);
      case "limits":
        return await runLimitsCommand(args, config);
      default:
        console.error(`relay: unknown command ${JSON.stringify(command)}\n\n${mainHelp()}`);
        return 2;
    }
  } finally {
    await teardownLogging();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      Deno.exit(1);
    }
    console.error(`relay: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
