/**
 * Runs `relay user ... --ldap` in-process with a given standard input and
 * collects what it prints, for the LDAP tests (slapd and 389 DS alike).
 *
 * @module
 */
import { type LdapUserCommandOptions, runLdapUserCommand } from "../../src/cli/user_ldap.ts";

/** Runs the command with `stdin` as standard input; collects its output. */
export async function cli(
  args: string[],
  config: Parameters<typeof runLdapUserCommand>[1],
  stdin = "",
  extra: LdapUserCommandOptions = {},
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const bytes = new TextEncoder().encode(stdin);
  let offset = 0;
  const code = await runLdapUserCommand(args, config, {
    stdin: {
      read(buffer: Uint8Array): Promise<number | null> {
        if (offset >= bytes.length) return Promise.resolve(null);
        const n = Math.min(buffer.length, bytes.length - offset);
        buffer.set(bytes.subarray(offset, offset + n));
        offset += n;
        return Promise.resolve(n);
      },
    },
    isTerminal: false,
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
    ...extra,
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}
