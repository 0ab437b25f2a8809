/**
 * `relay user ... --ldap`: manage users in the LDAP directory.
 *
 * ```text
 * relay user add --ldap EMAIL --first GIVEN --last SURNAME [--cn NAME] [--create-ou] [--password-stdin]
 * relay user passwd --ldap EMAIL [--password-stdin]
 * relay user remove --ldap EMAIL
 * relay user show --ldap EMAIL
 *   common: [--bind-dn DN --bind-password-file FILE]   (default: [ldap.admin], else [ldap])
 * ```
 *
 * Passwords are read from the terminal without echo (asked twice) or, with
 * `--password-stdin`, from the first line of standard input. The directory
 * hashes them (Password Modify, RFC 3062) when it offers that; otherwise they
 * are hashed here (`[ldap.admin] password_scheme`). Either way a bind as the
 * user then proves the password works, or the command fails (exit 1) naming
 * the likely cause.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CommandError, readNewPassword, type UserIoOptions } from "./password_input.ts";
import type { LdapConfig } from "../config/ldap_schema.ts";
import { LdapAdminError, LdapUserAdmin } from "../auth/ldap/admin.ts";
import { describeAccountState } from "../auth/ldap/account_state.ts";
import { readLdapCa } from "../auth/ldap/authenticator.ts";
import type { PasswordMethod } from "../auth/ldap/password_write.ts";

export type { ByteReader } from "./password_input.ts";

/** Injection points for {@linkcode runLdapUserCommand} (tests); all default to the process's own. */
export interface LdapUserCommandOptions extends UserIoOptions {
  /** PEM CA for TLS to the directory; default: read `[ldap] ca`. */
  caPem?: string;
}

/** How the password reached the directory, for the success line. */
function passwordNote(method: PasswordMethod, config: LdapConfig): string {
  return method === "password_modify"
    ? "password hashed by the directory (Password Modify), checked with a bind"
    : `password stored as {${config.admin.password_scheme}}, checked with a bind`;
}

/** Longest password accepted, in bytes (directories cap bind passwords too). */
const MAX_PASSWORD_BYTES = 1024;

const USAGE = [
  "usage: relay user add --ldap EMAIL --first GIVEN --last SURNAME [--cn NAME] [--create-ou]",
  "                      [--password-stdin]",
  "       relay user passwd --ldap EMAIL [--password-stdin]",
  "       relay user remove --ldap EMAIL",
  "       relay user show --ldap EMAIL",
  "  every command: [--bind-dn DN --bind-password-file FILE] (default: [ldap.admin])",
].join("\n");

/**
 * Runs `relay user ... --ldap`. `args` are the words after `user` (`--ldap`
 * may be among them). Resolves the exit status: 0 done, 1 failed, 2 usage error.
 */
export async function runLdapUserCommand(
  args: string[],
  ldapConfig: LdapConfig,
  options: LdapUserCommandOptions = {},
): Promise<number> {
  const stdout = options.stdout ?? ((line: string) => console.log(line));
  const stderr = options.stderr ?? ((line: string) => console.error(line));
  let admin: LdapUserAdmin | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        strict: true,
        options: {
          ldap: { type: "boolean" },
          first: { type: "string" },
          last: { type: "string" },
          cn: { type: "string" },
          "create-ou": { type: "boolean" },
          "password-stdin": { type: "boolean" },
          "bind-dn": { type: "string" },
          "bind-password-file": { type: "string" },
          help: { type: "boolean", short: "h" },
        },
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : "bad arguments";
      throw new CommandError(`${message}\n${USAGE}`, 2);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      stdout(USAGE);
      return 0;
    }
    const [command, ...rest] = positionals;
    const common = ["ldap", "bind-dn", "bind-password-file"];
    const allowed: Record<string, string[]> = {
      add: [...common, "first", "last", "cn", "create-ou", "password-stdin"],
      passwd: [...common, "password-stdin"],
      remove: common,
      show: common,
    };
    if (command === undefined || !Object.hasOwn(allowed, command)) {
      const what = command === undefined ? "missing command" : `unknown command: ${command}`;
      throw new CommandError(`${what}\n${USAGE}`, 2);
    }
    for (const [name, value] of Object.entries(values)) {
      if (value !== undefined && !allowed[command].includes(name)) {
        throw new CommandError(`--${name} does not apply to "user ${command} --ldap"\n${USAGE}`, 2);
      }
    }
    if (rest.length !== 1) {
      throw new CommandError(`${command} takes exactly one EMAIL argument\n${USAGE}`, 2);
    }
    const email = rest[0];
    if ((values["bind-dn"] === undefined) !== (values["bind-password-file"] === undefined)) {
      throw new CommandError("--bind-dn and --bind-password-file go together", 2);
    }
    let bindPassword: string | undefined;
    if (values["bind-password-file"] !== undefined) {
      try {
        bindPassword = (await Deno.readTextFile(values["bind-password-file"])).replace(
          /\r?\n$/,
          "",
        );
      } catch (error) {
        throw new CommandError(
          `cannot read ${values["bind-password-file"]}: ${(error as Error).message}`,
        );
      }
    }
    if (command === "add" && (!values.first || !values.last)) {
      throw new CommandError(`add needs --first and --last\n${USAGE}`, 2);
    }
    admin = new LdapUserAdmin(ldapConfig, {
      caPem: options.caPem ?? await readLdapCa(ldapConfig),
      bindDn: values["bind-dn"],
      bindPassword,
    });
    switch (command) {
      case "add": {
        // Fail on an existing user before asking for a password.
        if (await admin.findUser(email) !== null) {
          throw new CommandError(`${email.trim().toLowerCase()} already exists`);
        }
        const password = await readNewPassword(
          values["password-stdin"] === true,
          options,
          MAX_PASSWORD_BYTES,
        );
        const added = await admin.addUser({
          email,
          givenName: values.first!,
          surname: values.last!,
          displayName: values.cn,
          password,
          createOu: values["create-ou"] === true,
        });
        for (const dn of added.created) stdout(`created ${dn}`);
        stdout(`added ${added.email} as ${added.dn} (uidNumber ${added.uidNumber})`);
        stdout(passwordNote(added.passwordMethod, ldapConfig));
        return 0;
      }
      case "passwd": {
        if (await admin.findUser(email) === null) {
          throw new CommandError(`no such user: ${email.trim().toLowerCase()}`);
        }
        const password = await readNewPassword(
          values["password-stdin"] === true,
          options,
          MAX_PASSWORD_BYTES,
        );
        const changed = await admin.setPassword(email, password);
        stdout(`changed the password of ${changed.dn}`);
        stdout(passwordNote(changed.passwordMethod, ldapConfig));
        return 0;
      }
      case "remove": {
        const dn = await admin.removeUser(email);
        stdout(`removed ${dn}`);
        return 0;
      }
      default: {
        const entry = await admin.findUser(email);
        if (entry === null) throw new CommandError(`no such user: ${email.trim().toLowerCase()}`);
        stdout(`dn: ${entry.dn}`);
        for (const mail of entry.mail) stdout(`mail: ${mail}`);
        if (entry.uidNumber !== undefined) stdout(`uidNumber: ${entry.uidNumber}`);
        stdout(`account: ${describeAccountState(entry.state)}`);
        if (entry.passwordChanged) {
          stdout(`password changed: ${entry.passwordChanged.toISOString()}`);
        }
        return 0;
      }
    }
  } catch (error) {
    const code = error instanceof CommandError ? error.code : 1;
    const message = error instanceof CommandError || error instanceof LdapAdminError
      ? error.message
      : error instanceof Error
      ? error.message.split("\n")[0]
      : String(error);
    stderr(`relay user: ${message}`);
    return code;
  } finally {
    await admin?.close();
  }
}
