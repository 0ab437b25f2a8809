/**
 * Replacing a small file so that a crash leaves either the old or the new
 * content, never a torn one: write a temporary file beside it, fsync its
 * data, rename it over the target. The caller syncs the directory (grouped,
 * see {@link DirectorySync}) when the new name itself must be durable.
 *
 * The file operations go through a {@link DurableFs} port, so a test can
 * play a full or failing disk without privileges.
 *
 * @module
 */

/** The file operations {@link writeFileDurably} needs. */
export interface DurableFs {
  /** Creates or truncates `path` (mode 0600), writes `data` and fdatasyncs it. */
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Renames `from` over `to`. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file. */
  remove(path: string): Promise<void>;
}

/** {@link DurableFs} on the real file system. */
export const denoFs: DurableFs = {
  async writeFile(path, data) {
    const file = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      let offset = 0;
      while (offset < data.length) offset += await file.write(data.subarray(offset));
      await file.syncData();
    } finally {
      file.close();
    }
  },
  rename: (from, to) => Deno.rename(from, to),
  remove: (path) => Deno.remove(path),
};

/**
 * Writes `data` to `path` through `<path>.tmp` + fdatasync + rename (mode
 * 0600). When any step fails (a full disk), the temporary file is removed
 * before the error is rethrown, so failures leave nothing behind.
 */
export async function writeFileDurably(
  path: string,
  data: Uint8Array,
  fs: DurableFs = denoFs,
): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.remove(tmp).catch(() => {});
    throw error;
  }
}

/** Coalesces fsyncs of one directory: callers arriving during a sync share the next one. */
export class DirectorySync {
  #dir: string;
  #fsync: (dir: string) => Promise<void>;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  /**
   * @param dir the directory whose entries must be durable
   * @param fsync how to sync it (injectable, so tests can make it fail)
   */
  constructor(dir: string, fsync: (dir: string) => Promise<void> = syncDirectory) {
    this.#dir = dir;
    this.#fsync = fsync;
  }

  /**
   * Resolves once a directory fsync that started after this call has
   * finished; rejects when that fsync failed. A failure is reported to the
   * callers that shared it only: the next call starts a fresh fsync.
   */
  sync(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#syncOnce().finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    // A sync is in flight and may have started before our rename: join the next,
    // which starts once the running one has settled, whatever its outcome.
    this.#next ??= this.#running.then(
      () => this.#startNext(),
      () => this.#startNext(),
    );
    return this.#next;
  }

  #startNext(): Promise<void> {
    this.#next = null;
    return this.sync();
  }

  #syncOnce(): Promise<void> {
    return this.#fsync(this.#dir);
  }
}

/** fsyncs a directory, making the names created or renamed in it durable. */
export async function syncDirectory(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}
