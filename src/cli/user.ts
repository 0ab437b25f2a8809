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
import { parseArgs } from "node:util";
import type { Config } from "../config/mod.ts";
import {
  argon2ParamsFromConfig,
  createUserStore,
  hashPassword,
  MAX_PASSWORD_BYTES,
  UserFileError,
  type UserFileProblem,
} from "../auth/mod.ts";
import { parseEmail } from "../policy/address.ts";

/** Something bytes can be read from, like `Deno.stdin`. */
export interface ByteReader {
  /** Reads into `buffer`; resolves the count, or `null` at end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Injection points for {@link runUserCommand} (tests); all default to the process's own. */
export interface UserCommandOptions {
  /** Where `--password-stdin` reads from; default `Deno.stdin`. */
  stdin?: ByteReader;
  /** Whether a terminal can be asked; default `Deno.stdin.isTerminal()`. */
  isTerminal?: boolean;
  /** Asks for a password without echo; resolves `null` when the user gave up. */
  promptPassword?: (prompt: string) => Promise<string | null>;
  /** Writes one line of results; default standard output. */
  stdout?: (line: string) => void;
  /** Writes one line of errors and warnings; default standard error. */
  stderr?: (line: string) => void;
}

const USAGE = [
  "usage: relay user add EMAIL [--password-stdin] [--global]",
  "       relay user passwd EMAIL [--password-stdin]",
  "       relay user remove EMAIL",
  "       relay user list [--domain DOMAIN]",
].join("\n");

/** A request that cannot be carried out; `code` is the exit status. */
class CommandError extends Error {
  readonly code: number;
  constructor(message: string, code = 1) {
    super(message);
    this.code = code;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads the first line of `reader` (without its line ending). */
async function readFirstLine(reader: ByteReader): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const buffer = new Uint8Array(1024);
  for (;;) {
    const n = await reader.read(buffer);
    if (n === null) break;
    const chunk = buffer.slice(0, n);
    const newline = chunk.indexOf(0x0a);
    chunks.push(newline === -1 ? chunk : chunk.subarray(0, newline));
    length += newline === -1 ? n : newline;
    if (newline !== -1) break;
    if (length > MAX_PASSWORD_BYTES) break;
  }
  const line = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    line.set(chunk, offset);
    offset += chunk.length;
  }
  return decoder.decode(line).replace(/\r$/, "");
}

/** Asks on the terminal with echo off: reads until Enter; Ctrl-C or Ctrl-D gives up. */
async function promptOnTerminal(prompt: string): Promise<string | null> {
  await Deno.stderr.write(encoder.encode(prompt));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  try {
    const buffer = new Uint8Array(256);
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) return null;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 0x0d || byte === 0x0a) return decoder.decode(new Uint8Array(bytes));
        if (byte === 0x03) return null; // Ctrl-C
        if (byte === 0x04 && bytes.length === 0) return null; // Ctrl-D on an empty line
        if (byte === 0x15) bytes.length = 0; // Ctrl-U
        else if (byte === 0x7f || byte === 0x08) {
          // Backspace: drop one whole UTF-8 character (its continuation bytes first).
          while (bytes.length > 0 && (bytes[bytes.length - 1] & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else if (byte >= 0x20 || byte === 0x09) bytes.push(byte);
      }
    }
  } finally {
    bytes.fill(0);
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
}

/** Gets the new password from stdin or the terminal, and checks it is not empty. */
async function readNewPassword(
  fromStdin: boolean,
  options: UserCommandOptions,
): Promise<string> {
  let password: string;
  if (fromStdin) {
    password = await readFirstLine(options.stdin ?? Deno.stdin);
  } else {
    const isTerminal = options.isTerminal ?? Deno.stdin.isTerminal();
    if (!isTerminal) {
      throw new CommandError("no terminal to ask for the password: use --password-stdin", 2);
    }
    const prompt = options.promptPassword ?? promptOnTerminal;
    const first = await prompt("New password: ");
    if (first === null) throw new CommandError("cancelled");
    if (first === "") throw new CommandError("empty password refused");
    const second = await prompt("Repeat password: ");
    if (second === null) throw new CommandError("cancelled");
    if (first !== second) throw new CommandError("passwords do not match");
    password = first;
  }
  if (password === "") throw new CommandError("empty password refused");
  if (encoder.encode(password).length > MAX_PASSWORD_BYTES) {
    throw new CommandError(`password longer than ${MAX_PASSWORD_BYTES} bytes refused`);
  }
  return password;
}

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
        const password = await readNewPassword(values["password-stdin"] === true, options);
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
        const password = await readNewPassword(values["password-stdin"] === true, options);
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
