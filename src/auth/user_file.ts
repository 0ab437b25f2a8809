/**
 * Password files: one global file (`auth.file.users`) and one file per
 * domain (`<auth.file.users_dir>/<domain>.txt`), each holding lines
 *
 * ```text
 * # comment
 * alice@example.com:{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$...$...
 * ```
 *
 * A user is looked up in its domain's file first, then in the global file.
 * Files are re-stat'ed on every lookup (device, inode, size, mtime, ctime)
 * and parsed again when they changed, so edits take effect without a
 * restart; a missing file holds no users. Bad lines are reported with
 * `file:line` (never their content) and skipped. Writes replace the file
 * atomically and keep every other line, comments included.
 *
 * @module
 */
import { normalizeDomain, parseEmail } from "../mail/mod.ts";
import { getLogger } from "@logtape/logtape";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { checkStoredHash, isPlaintextScheme, parseScheme } from "./password_hash.ts";

/** One usable user line. */
export interface UserEntry {
  /** Canonical email: lower-cased local part, ASCII domain. */
  email: string;
  /** The canonical domain. */
  domain: string;
  /** The stored value, `{SCHEME}` prefix included. */
  hash: string;
  /** The scheme, e.g. `ARGON2ID`. */
  scheme: string;
  /** The file it came from. */
  file: string;
  /** Its 1-based line number. */
  line: number;
}

/** A line that was skipped or accepted with a warning. Never contains a secret. */
export interface UserFileProblem {
  /** The file, as configured. */
  file: string;
  /** The 1-based line number. */
  line: number;
  /** `error`: the line was refused; `warning`: skipped as malformed, or accepted with a caveat. */
  level: "warning" | "error";
  /** What is wrong; may name the user, never the password field. */
  message: string;
}

/** The result of parsing one users file. */
export interface ParsedUserFile {
  /** Usable entries by canonical email (the first line wins). */
  entries: Map<string, UserEntry>;
  /** Lines skipped or accepted with a warning, in file order. */
  problems: UserFileProblem[];
}

/** Options for {@link parseUserFile}. */
export interface ParseUserFileOptions {
  /** The file name, for entries and problems. */
  file: string;
  /** For a per-domain file, its domain: lines for other domains are skipped. */
  domain: string | null;
  /** Accept plain-text passwords (with a warning each). */
  allowPlaintext: boolean;
}

/** Thrown by the editing methods for a request that cannot be done (message safe to show). */
export class UserFileError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UserFileError";
  }
}

const FORMAT_HINT = "expected email:{SCHEME}hash";

/** Splits a non-comment line into the email text and the password field. */
function splitLine(line: string): { email: string; password: string; extra: boolean } | null {
  const colon = line.indexOf(":");
  if (colon <= 0) return null;
  const fields = line.slice(colon + 1).split(":");
  // Dovecot passwd-file lines may carry empty trailing fields (`user:hash::::`); allow those only.
  const extra = fields.slice(1).some((field) => field.trim() !== "");
  return { email: line.slice(0, colon).trim(), password: fields[0].trim(), extra };
}

/** Whether a line is blank or a comment. */
function isIgnorable(line: string): boolean {
  const trimmed = line.trim();
  return trimmed === "" || trimmed.startsWith("#");
}

/**
 * Parses the text of a users file. Malformed lines, plain text (unless
 * allowed), unknown schemes, lines for another domain (in a per-domain file)
 * and duplicates are skipped and reported.
 */
export function parseUserFile(text: string, options: ParseUserFileOptions): ParsedUserFile {
  const { file, domain, allowPlaintext } = options;
  const entries = new Map<string, UserEntry>();
  const problems: UserFileProblem[] = [];
  const report = (line: number, level: UserFileProblem["level"], message: string) =>
    problems.push({ file, line, level, message });
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, "");
    const lineNo = i + 1;
    if (isIgnorable(raw)) continue;
    const parts = splitLine(raw);
    if (parts === null) {
      report(lineNo, "warning", `malformed line skipped: ${FORMAT_HINT}`);
      continue;
    }
    if (parts.extra) {
      report(
        lineNo,
        "warning",
        "malformed line skipped: extra passwd-file fields are not supported",
      );
      continue;
    }
    const address = parseEmail(parts.email);
    if (address === null) {
      report(lineNo, "warning", "malformed line skipped: not a valid email address");
      continue;
    }
    if (domain !== null && address.domain !== domain) {
      report(lineNo, "warning", `line for another domain (${address.domain}) skipped`);
      continue;
    }
    if (parts.password === "") {
      report(lineNo, "warning", "malformed line skipped: empty password field");
      continue;
    }
    const problem = checkStoredHash(parts.password);
    if (problem !== null) {
      report(lineNo, "warning", `line skipped: ${problem}`);
      continue;
    }
    const { scheme } = parseScheme(parts.password);
    if (isPlaintextScheme(scheme)) {
      if (!allowPlaintext) {
        report(
          lineNo,
          "error",
          `plain-text password refused for ${address.canonical}: store a hash ` +
            "(relay user passwd) or set auth.file.allow_plaintext for development",
        );
        continue;
      }
      report(lineNo, "warning", `plain-text password accepted for ${address.canonical}`);
    }
    const previous = entries.get(address.canonical);
    if (previous !== undefined) {
      report(
        lineNo,
        "warning",
        `duplicate entry for ${address.canonical} skipped (line ${previous.line} wins)`,
      );
      continue;
    }
    entries.set(address.canonical, {
      email: address.canonical,
      domain: address.domain,
      hash: parts.password,
      scheme,
      file,
      line: lineNo,
    });
  }
  return { entries, problems };
}

/** Options for {@link UserStore}. */
export interface UserStoreOptions {
  /** The global users file. */
  usersFile: string;
  /** The folder of per-domain `<domain>.txt` files. */
  usersDir: string;
  /** Accept plain-text passwords (development only). */
  allowPlaintext: boolean;
  /** Receives problems found while parsing; default: the `["relay","auth"]` logger. */
  report?: (problem: UserFileProblem) => void;
  /** The wall clock (ms) that tells a folder changed just now; default `Date.now`. */
  now?: () => number;
}

/** Where {@link UserStore.addUser} writes. */
export interface AddUserOptions {
  /** `domain`: `<users_dir>/<domain>.txt`; `global`: the global file. */
  target: "domain" | "global";
}

interface CachedFile {
  signature: string;
  /**
   * Read within a second of the file's mtime: a same-size rewrite in the
   * same clock tick would keep the signature, so read it again next time.
   */
  racy: boolean;
  /** SHA-256 of the text, so a re-read of unchanged text is not parsed (and reported) again. */
  digest: string;
  parsed: ParsedUserFile;
}

/** How close to its mtime a file must be read for the read to count as racy (ms). */
const RACY_WINDOW_MS = 1000;

const EMPTY: ParsedUserFile = { entries: new Map(), problems: [] };

function defaultReport(problem: UserFileProblem): void {
  const logger = getLogger(["relay", "auth"]);
  const properties = { ...problem };
  if (problem.level === "error") logger.error("{file}:{line}: {message}", properties);
  else logger.warn("{file}:{line}: {message}", properties);
}

function signatureOf(info: Deno.FileInfo): string {
  return [info.dev, info.ino, info.size, info.mtime?.getTime(), info.ctime?.getTime()].join(":");
}

/**
 * The signature of the folder holding `path` (a file created, renamed into
 * or removed from it changes its mtime), or null when the folder is missing
 * or changed within the last second: timestamps have millisecond precision
 * here, so a change in the same millisecond could keep the signature.
 */
function folderSignature(path: string, now: number): string | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(dirname(path));
  } catch {
    return null;
  }
  const changed = Math.max(info.mtime?.getTime() ?? Infinity, info.ctime?.getTime() ?? Infinity);
  if (!(now - changed >= RACY_WINDOW_MS)) return null;
  return signatureOf(info);
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * Replaces `path` with `text`: a temporary file in the same folder, written,
 * fsync'd and renamed over it, mode 0600; then the folder is synced. With
 * `unless`, the file is read again just before the rename and left alone
 * (resolving false) when its text is no longer `unless.expected` — an edit
 * by a tool that does not take the lock.
 */
async function writeAtomically(
  path: string,
  text: string,
  unless?: { expected: string },
): Promise<boolean> {
  const dir = dirname(path);
  const suffix = crypto.getRandomValues(new Uint8Array(6)).toHex();
  const temp = join(dir, `.${basename(path)}.${suffix}.tmp`);
  const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
  try {
    const bytes = new TextEncoder().encode(text);
    for (let written = 0; written < bytes.length;) {
      written += await file.write(bytes.subarray(written));
    }
    await file.sync();
  } catch (error) {
    file.close();
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  file.close();
  if (unless !== undefined && (await readOptional(path)) !== unless.expected) {
    await Deno.remove(temp).catch(() => {});
    return false;
  }
  try {
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  try {
    const folder = await Deno.open(dir, { read: true });
    try {
      await folder.sync();
    } finally {
      folder.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the rename itself is still atomic.
  }
  return true;
}

/** The canonical email a raw line is about, whatever else is wrong with it. */
function lineEmail(line: string): string | null {
  if (isIgnorable(line)) return null;
  const parts = splitLine(line.replace(/\r$/, ""));
  return parts === null ? null : parseEmail(parts.email)?.canonical ?? null;
}

/** The users files: lookups with reload-on-change, and the edits the CLI makes. */
export class UserStore {
  readonly #usersFile: string;
  readonly #usersDir: string;
  readonly #allowPlaintext: boolean;
  readonly #report: (problem: UserFileProblem) => void;
  readonly #now: () => number;
  readonly #cache = new Map<string, CachedFile>();
  /**
   * Files found missing (most domains have no file of their own), with the
   * signature their folder had then: while the folder is unchanged the file
   * is still missing, and a stat of the folder (~2 µs) is cheaper than the
   * error a stat of the missing file throws (~9 µs) on every AUTH.
   */
  readonly #missing = new Map<string, string>();
  readonly #loading = new Map<string, Promise<ParsedUserFile>>();
  #writes: Promise<unknown> = Promise.resolve();

  /** Creates the store; nothing is read until the first lookup. */
  constructor(options: UserStoreOptions) {
    this.#usersFile = options.usersFile;
    this.#usersDir = options.usersDir;
    this.#allowPlaintext = options.allowPlaintext;
    this.#report = options.report ?? defaultReport;
    this.#now = options.now ?? Date.now;
  }

  /** The global users file. */
  get usersFile(): string {
    return this.#usersFile;
  }

  /** The per-domain file for a canonical domain. */
  domainFile(domain: string): string {
    return join(this.#usersDir, `${domain}.txt`);
  }

  /** Parses a file if it changed since last time; a missing file is empty. */
  async #load(path: string, domain: string | null): Promise<ParsedUserFile> {
    if (this.#stillMissing(path)) return EMPTY;
    let info: Deno.FileInfo;
    try {
      // Every AUTH stats the files: a synchronous stat of a cached inode takes
      // microseconds, the async one a trip through the blocking thread pool
      // (measured: 4% of the main thread with a new connection per message).
      info = Deno.statSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        this.#cache.delete(path);
        this.#noteMissing(path);
        return EMPTY;
      }
      throw error;
    }
    const signature = signatureOf(info);
    const cached = this.#cache.get(path);
    if (cached !== undefined && cached.signature === signature && !cached.racy) {
      return cached.parsed;
    }
    // Concurrent lookups after a change share one read.
    let loading = this.#loading.get(path);
    if (loading === undefined) {
      loading = this.#read(path, domain, signature, info.mtime?.getTime())
        .finally(() => this.#loading.delete(path));
      this.#loading.set(path, loading);
    }
    return await loading;
  }

  #stillMissing(path: string): boolean {
    const folder = this.#missing.get(path);
    if (folder === undefined) return false;
    if (folder === folderSignature(path, this.#now())) return true;
    this.#missing.delete(path);
    return false;
  }

  #noteMissing(path: string): void {
    const folder = folderSignature(path, this.#now());
    if (folder === null) return;
    // Created between the first stat and the folder's? Then it is not missing.
    try {
      Deno.statSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) this.#missing.set(path, folder);
    }
  }

  async #read(
    path: string,
    domain: string | null,
    signature: string,
    mtime: number | undefined,
  ): Promise<ParsedUserFile> {
    const text = await readOptional(path);
    if (text === null) {
      this.#cache.delete(path);
      return EMPTY;
    }
    const racy = mtime === undefined || Date.now() - mtime < RACY_WINDOW_MS;
    const digest = createHash("sha256").update(text).digest("base64");
    const cached = this.#cache.get(path);
    if (cached !== undefined && cached.digest === digest) {
      this.#cache.set(path, { ...cached, signature, racy });
      return cached.parsed;
    }
    const parsed = parseUserFile(text, {
      file: path,
      domain,
      allowPlaintext: this.#allowPlaintext,
    });
    for (const problem of parsed.problems) this.#report(problem);
    this.#cache.set(path, { signature, racy, digest, parsed });
    return parsed;
  }

  /**
   * Finds a user: its domain's file first, then the global file. Resolves
   * `null` for an unknown user or an address that is not valid.
   *
   * @throws {Error} when a file exists but cannot be read
   */
  async lookup(email: string): Promise<UserEntry | null> {
    const address = parseEmail(email);
    if (address === null) return null;
    const own = await this.#load(this.domainFile(address.domain), address.domain);
    const found = own.entries.get(address.canonical);
    if (found !== undefined) return found;
    const global = await this.#load(this.#usersFile, null);
    return global.entries.get(address.canonical) ?? null;
  }

  /**
   * Lists usable entries, sorted by email: every per-domain file and the
   * global file, or only those for `domain`.
   */
  async listUsers(options: { domain?: string } = {}): Promise<UserEntry[]> {
    const out: UserEntry[] = [];
    let domains: string[];
    if (options.domain !== undefined) {
      const domain = normalizeDomain(options.domain);
      if (domain === null) throw new UserFileError("not a valid domain name");
      domains = [domain];
    } else {
      domains = await this.#domainsOnDisk();
    }
    for (const domain of domains) {
      out.push(...(await this.#load(this.domainFile(domain), domain)).entries.values());
    }
    for (const entry of (await this.#load(this.#usersFile, null)).entries.values()) {
      if (options.domain === undefined || domains.includes(entry.domain)) out.push(entry);
    }
    return out.sort((a, b) => a.email < b.email ? -1 : a.email > b.email ? 1 : 0);
  }

  async #domainsOnDisk(): Promise<string[]> {
    const domains: string[] = [];
    try {
      for await (const item of Deno.readDir(this.#usersDir)) {
        if (!item.isFile || !item.name.endsWith(".txt")) continue;
        const name = item.name.slice(0, -".txt".length);
        if (normalizeDomain(name) === name) domains.push(name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return domains.sort();
  }

  /**
   * Runs edits one after another, so two edits never lose each other: in this
   * process through a promise chain, across processes (the CLI and a running
   * relay that rehashes on login) through an exclusive lock on
   * `.<users file name>.lock` beside the global users file.
   */
  #serialize<T>(edit: () => Promise<T>): Promise<T> {
    const locked = () => this.#locked(edit);
    const run = this.#writes.then(locked, locked);
    this.#writes = run.catch(() => {});
    return run;
  }

  async #locked<T>(edit: () => Promise<T>): Promise<T> {
    const dir = dirname(this.#usersFile);
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = await Deno.open(join(dir, `.${basename(this.#usersFile)}.lock`), {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    try {
      await lock.lock(true);
      return await edit();
    } finally {
      lock.close(); // releases the lock
    }
  }

  #checkNewHash(hash: string): void {
    const problem = checkStoredHash(hash);
    if (problem !== null) throw new UserFileError(`unusable password hash: ${problem}`);
    if (isPlaintextScheme(parseScheme(hash).scheme) && !this.#allowPlaintext) {
      throw new UserFileError("plain-text passwords are not allowed");
    }
  }

  #address(email: string): { canonical: string; domain: string } {
    const address = parseEmail(email);
    if (address === null) throw new UserFileError(`not a valid email address: ${email}`);
    return address;
  }

  /** The files that may hold `domain`'s users, in lookup order. */
  #filesFor(domain: string): string[] {
    return [this.domainFile(domain), this.#usersFile];
  }

  /**
   * The first file (its domain's, then the global one) with a line for the
   * user, usable or not; `null` when there is none.
   */
  async holder(email: string): Promise<string | null> {
    const { canonical, domain } = this.#address(email);
    for (const file of this.#filesFor(domain)) {
      const text = await readOptional(file);
      if (text?.split("\n").some((line) => lineEmail(line) === canonical)) return file;
    }
    return null;
  }

  /**
   * Adds a user to its domain's file (created with its folder if needed) or
   * to the global file. Returns the file written.
   *
   * @throws {UserFileError} when the user already has a line in either file
   */
  addUser(email: string, hash: string, options: AddUserOptions): Promise<string> {
    return this.#serialize(async () => {
      const { canonical, domain } = this.#address(email);
      this.#checkNewHash(hash);
      for (const file of this.#filesFor(domain)) {
        const text = await readOptional(file);
        if (text?.split("\n").some((line) => lineEmail(line) === canonical)) {
          throw new UserFileError(`${canonical} already exists in ${file}`);
        }
      }
      const path = options.target === "domain" ? this.domainFile(domain) : this.#usersFile;
      await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const text = (await readOptional(path)) ?? "";
      const separator = text === "" || text.endsWith("\n") ? "" : "\n";
      await writeAtomically(path, `${text}${separator}${canonical}:${hash}\n`);
      return path;
    });
  }

  /**
   * Replaces the password of a user in the first file that holds it (its
   * domain's, else the global one), even if its current line was refused.
   * Returns the file written.
   *
   * @throws {UserFileError} when no file has a line for the user
   */
  setPassword(email: string, hash: string): Promise<string> {
    return this.#serialize(async () => {
      const { canonical, domain } = this.#address(email);
      this.#checkNewHash(hash);
      for (const file of this.#filesFor(domain)) {
        const text = await readOptional(file);
        if (text === null) continue;
        let found = false;
        const lines = text.split("\n").map((line) => {
          if (lineEmail(line) !== canonical) return line;
          found = true;
          const cr = line.endsWith("\r") ? "\r" : "";
          return `${line.slice(0, line.indexOf(":"))}:${hash}${cr}`;
        });
        if (!found) continue;
        await writeAtomically(file, lines.join("\n"));
        return file;
      }
      throw new UserFileError(`no such user: ${canonical}`);
    });
  }

  /**
   * Replaces a user's stored hash with `hash` in `entry.file`, but only if
   * the user's line there still holds `entry.hash` (a compare-and-swap: a
   * password changed meanwhile, by the CLI or by hand, wins). Every other
   * line is kept. Resolves whether the file was written.
   *
   * @throws {UserFileError} for an unusable `hash`
   */
  upgradeHash(entry: Pick<UserEntry, "email" | "file" | "hash">, hash: string): Promise<boolean> {
    return this.#serialize(async () => {
      this.#checkNewHash(hash);
      const text = await readOptional(entry.file);
      if (text === null) return false;
      const lines = text.split("\n");
      const index = lines.findIndex((line) => lineEmail(line) === entry.email);
      const line = lines[index];
      if (line === undefined) return false;
      if (splitLine(line.replace(/\r$/, ""))?.password !== entry.hash) return false;
      const cr = line.endsWith("\r") ? "\r" : "";
      lines[index] = `${line.slice(0, line.indexOf(":"))}:${hash}${cr}`;
      return await writeAtomically(entry.file, lines.join("\n"), { expected: text });
    });
  }

  /**
   * Removes every line for a user from its domain's file and the global
   * file. Returns the files written.
   *
   * @throws {UserFileError} when no file has a line for the user
   */
  removeUser(email: string): Promise<string[]> {
    return this.#serialize(async () => {
      const { canonical, domain } = this.#address(email);
      const changed: string[] = [];
      for (const file of this.#filesFor(domain)) {
        const text = await readOptional(file);
        if (text === null) continue;
        const lines = text.split("\n");
        const kept = lines.filter((line) => lineEmail(line) !== canonical);
        if (kept.length === lines.length) continue;
        await writeAtomically(file, kept.join("\n"));
        changed.push(file);
      }
      if (changed.length === 0) throw new UserFileError(`no such user: ${canonical}`);
      return changed;
    });
  }
}
