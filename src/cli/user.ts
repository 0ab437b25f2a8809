/**
 * `relay user ...`: manage the password files.
 *
 * ```text
 * relay user add EMAIL [--password-stdin] [--global]
 * relay user passwd EMAIL [--password-stdin]
 * relay user remove EMAIL
 * relay user list [--domain DOMAIN]
 * ```
 *
 * New users go to `<auth.file.users_dir>/<domain>.txt` unless `--global`
 * puts them in `auth.file.users`. Passwords are read from the terminal
 * without echo (asked twice) or, with `--password-stdin`, from the first
 * line of standard input; they are hashed with `auth.argon2`.
 *
 * @module
 */
import { parseEmail } from "../mail/mod.ts";
import { parseArgs } from "node:util";
import { CommandError, readNewPassword, type UserIoOptions } from "./password_input.ts";
import type { Config } from "../config/mod.ts";
import {
  argon2ParamsFromConfig,
  createUserStore,
  hashPassword,
  MAX_PASSWORD_BYTES,
  UserFileError,
  type UserFileProblem,
} from "../auth/mod.ts";

export type { ByteReader } from "./password_input.ts";

/** Injection points for {@link runUserCommand} (tests); all default to the process's own. */
export type UserCommandOptions = UserIoOptions;

const USAGE = [
  "usage: relay user add EMAIL [--password-stdin] [--global]",
  "       relay user passwd EMAIL [--password-stdin]",
  "       relay user remove EMAIL",
  "       relay user list [--domain DOMAIN]",
].join("\n");

/** The single EMAIL argument of `add`, `passwd` and `remove`, canonicalised. */
function emailArgument(positionals: string[], command: string): string {
  if (positionals.length !== 1) {
    throw new CommandError(`${command} takes exactly one EMAIL argument\n${USAGE}`, 2);
  }
  const address = parseEmail(positionals[0]);
  if (address === null) throw new CommandError(`not a valid email address: ${positionals[0]}`);
  return address.canonical;
}

/**
 * Runs `relay user ...`. `args` are the words after `user`. Resolves the
 * exit status: 0 done, 1 failed, 2 usage error.
 */
export async function runUserCommand(
  args: string[],
  config: Config,
  options: UserCommandOptions = {},
): Promise<number> {
  const stdout = options.stdout ?? ((line: string) => console.log(line));
  const stderr = options.stderr ?? ((line: string) => console.error(line));
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        strict: true,
        options: {
          "password-stdin": { type: "boolean" },
          global: { type: "boolean" },
          domain: { type: "string" },
          ldap: { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : "bad arguments";
      throw new CommandError(`${message}\n${USAGE}`, 2);
    }
    const { values, positionals } = parsed;
    if (values.ldap) throw new CommandError("LDAP user management: not available yet");
    if (values.help) {
      stdout(USAGE);
      return 0;
    }
    const [command, ...rest] = positionals;
    const allowed: Record<string, string[]> = {
      add: ["password-stdin", "global"],
      passwd: ["password-stdin"],
      remove: [],
      list: ["domain"],
    };
    if (command === undefined || !(command in allowed)) {
      const what = command === undefined ? "missing command" : `unknown command: ${command}`;
      throw new CommandError(`${what}\n${USAGE}`, 2);
    }
    for (const [name, value] of Object.entries(values)) {
      if (value !== undefined && !allowed[command].includes(name)) {
        throw new CommandError(`--${name} does not apply to "user ${command}"\n${USAGE}`, 2);
      }
    }
    const store = createUserStore(config, (problem: UserFileProblem) => {
      stderr(`${problem.level}: ${problem.file}:${problem.line}: ${problem.message}`);
    });
    const params = argon2ParamsFromConfig(config.auth.argon2);
    switch (command) {
      case "add": {
        const email = emailArgument(rest, command);
        const existing = await store.holder(email);
        if (existing !== null) throw new CommandError(`${email} already exists in ${existing}`);
        const password = await readNewPassword(
          values["password-stdin"] === true,
          options,
          MAX_PASSWORD_BYTES,
        );
        const hash = await hashPassword(password, params);
        const file = await store.addUser(email, hash, {
          target: values.global ? "global" : "domain",
        });
        stdout(`added ${email} to ${file}`);
        return 0;
      }
      case "passwd": {
        const email = emailArgument(rest, command);
        if (await store.holder(email) === null) throw new CommandError(`no such user: ${email}`);
        const password = await readNewPassword(
          values["password-stdin"] === true,
          options,
          MAX_PASSWORD_BYTES,
        );
        const file = await store.setPassword(email, await hashPassword(password, params));
        stdout(`changed the password of ${email} in ${file}`);
        return 0;
      }
      case "remove": {
        const email = emailArgument(rest, command);
        const files = await store.removeUser(email);
        stdout(`removed ${email} from ${files.join(", ")}`);
        return 0;
      }
      default: {
        if (rest.length > 0) throw new CommandError(`list takes no arguments\n${USAGE}`, 2);
        const users = await store.listUsers({ domain: values.domain });
        for (const user of users) stdout(`${user.email}\t${user.scheme}\t${user.file}`);
        if (users.length === 0) stderr("no users");
        return 0;
      }
    }
  } catch (error) {
    if (error instanceof CommandError) {
      stderr(`relay user: ${error.message}`);
      return error.code;
    }
    if (error instanceof UserFileError) {
      stderr(`relay user: ${error.message}`);
      return 1;
    }
    const message = error instanceof Error ? error.message : String(error);
    stderr(`relay user: ${message}`);
    return 1;
  }
}
