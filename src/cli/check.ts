/**
 * `relay check`: validates a configuration file and prints every problem
 * with its key, or a summary of what the file configures.
 *
 * @module
 */
import { ConfigError, loadConfig } from "../config/mod.ts";

/** Streams the command writes to (injectable for tests). */
export interface CheckIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const defaultIo: CheckIo = {
  stdout: (line) => console.log(line),
  stderr: (line) => console.error(line),
};

/** Checks the file at `path` (default path when undefined); exit code 0 when valid. */
export async function runCheck(path: string | undefined, io: CheckIo = defaultIo): Promise<number> {
  try {
    const { config, path: used } = await loadConfig(path);
    io.stdout(`${used ?? "(no config file: embedded defaults)"}: ok`);
    io.stdout(`  smtps      ${config.smtps.enabled ? config.smtps.listen : "disabled"}`);
    io.stdout(`  submission ${config.submission.enabled ? config.submission.listen : "disabled"}`);
    io.stdout(`  auth       ${config.auth.backends.join(", ")}`);
    io.stdout(`  relay      ${config.relay.url}`);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`${error.file}: ${error.issues.length} error(s)`);
    for (const issue of error.issues) io.stderr(`  ${issue.key || "(file)"}: ${issue.message}`);
    return 1;
  }
}
