/**
 * The relay's command line: `relay <command> [--config FILE] ...`.
 *
 *   serve                 run the relay (default command of `deno task start`)
 *   check                 validate the configuration and print every error
 *   user add|passwd|remove|list   manage password-file users
 *   certs generate|show   development CA and server certificate
 *   queue list|show|retry|delete|stats   the delivery queue (also while serving)
 *   oauth login|keys|hash-secret   the embedded OAuth2 server's tools
 *
 * @module
 */
import { runCertsCommand } from "./src/cli/certs.ts";
import { runCheck } from "./src/cli/check.ts";
import { runQueueCommand } from "./src/cli/queue.ts";
import { runOAuthCommand } from "./src/cli/oauth.ts";
import { runServe } from "./src/cli/serve.ts";
import { runUserCommand } from "./src/cli/user.ts";
import { runLdapUserCommand } from "./src/cli/user_ldap.ts";
import { ConfigError, loadConfig } from "./src/config/mod.ts";
import { setupLogging, teardownLogging } from "./src/observability/logger.ts";

const USAGE = `usage: relay <command> [--config FILE] [options]

commands:
  serve                          run the relay
  check                          validate the configuration file
  user add EMAIL [--password-stdin] [--global]
  user passwd EMAIL [--password-stdin]
  user remove EMAIL
  user list [--domain DOMAIN]
  user add --ldap EMAIL --first NAME --last NAME [--password-stdin] [--create-ou]
  user passwd --ldap EMAIL [--password-stdin]
  user remove --ldap EMAIL
  user show --ldap EMAIL
  certs generate [--hostname NAME]... [--force]
  certs show
  queue list [--json]            the delivery queue (works while the relay runs)
  queue show ID [--json]
  queue retry ID|--all           deliver now instead of at the scheduled retry
  queue delete ID
  queue stats [--json]
  queue ... --spool DIR          on another spool than [spool] dir (a dead node's)
  oauth login --email EMAIL [--client-id ID] [--no-browser] [--json]
  oauth keys rotate|list
  oauth hash-secret              hash a client secret read from stdin

The configuration file defaults to config/relay.toml; without it the embedded
defaults apply (SMTPS 127.0.0.1:8465, submission 127.0.0.1:8587).`;

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
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === "check") return await runCheck(path);
  const { config, path: used } = await loadConfig(path);
  await setupLogging(config.log);
  try {
    switch (command) {
      case "serve":
        return await runServe(config, used);
      case "user":
        return args.includes("--ldap")
          ? await runLdapUserCommand(args, config.ldap)
          : await runUserCommand(args, config);
      case "certs":
        return await runCertsCommand(args, config);
      case "queue":
        return await runQueueCommand(args, config);
      case "oauth":
        return await runOAuthCommand(args, config);
      default:
        console.error(`relay: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
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
