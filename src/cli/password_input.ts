/**
 * Reading a new password for the `relay user` commands: the first line of
 * standard input (`--password-stdin`, for scripts) or a prompt on the
 * terminal with echo off, asked twice. Buffers holding the password are
 * zeroed once read.
 *
 * @module
 */

/** Something bytes can be read from, like `Deno.stdin`. */
export interface ByteReader {
  /** Reads into `buffer`; resolves the count, or `null` at end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Where a password comes from (injectable for tests); defaults are the process's own. */
export interface PasswordInputOptions {
  /** Where `--password-stdin` reads from; default `Deno.stdin`. */
  stdin?: ByteReader;
  /** Whether a terminal can be asked; default `Deno.stdin.isTerminal()`. */
  isTerminal?: boolean;
  /** Asks for a password without echo; resolves `null` when the user gave up. */
  promptPassword?: (prompt: string) => Promise<string | null>;
}

/** What every `relay user` command takes for tests: password input and output lines. */
export interface UserIoOptions extends PasswordInputOptions {
  /** Writes one line of results; default standard output. */
  stdout?: (line: string) => void;
  /** Writes one line of errors and warnings; default standard error. */
  stderr?: (line: string) => void;
}

/** A request that cannot be carried out; `code` is the exit status (1 failed, 2 usage). */
export class CommandError extends Error {
  /** Exit status for the command. */
  readonly code: number;

  /** @param message shown to the user; @param code the exit status */
  constructor(message: string, code = 1) {
    super(message);
    this.name = "CommandError";
    this.code = code;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads the first line of `reader` without its line ending, at most `maxBytes` + 1 bytes. */
export async function readFirstLine(reader: ByteReader, maxBytes: number): Promise<string> {
  const bytes: number[] = [];
  const buffer = new Uint8Array(256);
  try {
    for (;;) {
      const n = await reader.read(buffer);
      if (n === null) break;
      const chunk = buffer.subarray(0, n);
      const newline = chunk.indexOf(0x0a);
      bytes.push(...(newline === -1 ? chunk : chunk.subarray(0, newline)));
      if (newline !== -1 || bytes.length > maxBytes) break;
    }
    return decoder.decode(new Uint8Array(bytes)).replace(/\r$/, "");
  } finally {
    buffer.fill(0);
    bytes.fill(0);
  }
}

/** Asks on the terminal with echo off: reads until Enter; Ctrl-C or Ctrl-D gives up. */
export async function promptOnTerminal(prompt: string): Promise<string | null> {
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

/**
 * Gets a new password from stdin (`fromStdin`) or the terminal (asked twice),
 * refusing empty and over-long ones.
 *
 * @throws {CommandError} with exit status 2 when there is no terminal to ask
 */
export async function readNewPassword(
  fromStdin: boolean,
  options: PasswordInputOptions,
  maxBytes: number,
): Promise<string> {
  let password: string;
  if (fromStdin) {
    password = await readFirstLine(options.stdin ?? Deno.stdin, maxBytes);
  } else {
    if (!(options.isTerminal ?? Deno.stdin.isTerminal())) {
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
  if (encoder.encode(password).length > maxBytes) {
    throw new CommandError(`password longer than ${maxBytes} bytes refused`);
  }
  return password;
}
