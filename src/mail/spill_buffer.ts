/**
 * Bytes held for a while: in memory up to a threshold, then in a file, and
 * read back once in order. The DKIM signing sink holds a message body in
 * one until the signature (which goes in front of it) is known.
 *
 * @module
 */

/** Default bytes held in memory before spilling to the file. */
export const SPILL_MEMORY_BYTES = 256 * 1024;
const READ_CHUNK = 64 * 1024;

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

/** A byte buffer that spills to `path` (created 0600) past `memoryBytes`. */
export class SpillBuffer {
  readonly #path: string;
  readonly #memoryBytes: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #file: Deno.FsFile | null = null;
  #writing: Promise<void> = Promise.resolve();
  #failed: unknown = null;
  #spilled = false;
  #size = 0;

  /**
   * @param path the file used past `memoryBytes` (removed by {@link discard} and after reading)
   * @param memoryBytes bytes held in memory before spilling
   */
  constructor(path: string, memoryBytes: number = SPILL_MEMORY_BYTES) {
    this.#path = path;
    this.#memoryBytes = memoryBytes;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends bytes (kept by reference: the caller must not reuse the array). */
  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#buffered += bytes.length;
    this.#size += bytes.length;
    if (this.#buffered >= this.#memoryBytes) this.#spill();
  }

  /** Resolves when writes to the file have caught up; `undefined` when nothing is pending. */
  drain(): Promise<void> | undefined {
    return this.#spilled ? this.#writing : undefined;
  }

  #spill(): void {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#buffered = 0;
    this.#spilled = true;
    this.#writing = this.#writing.then(async () => {
      if (this.#failed) return;
      try {
        this.#file ??= await Deno.open(this.#path, {
          read: true,
          write: true,
          createNew: true,
          mode: 0o600,
        });
        for (const chunk of chunks) await writeAll(this.#file, chunk);
      } catch (error) {
        this.#failed = error;
      }
    });
  }

  /** Every byte written, in order, in chunks; rejects when the file could not be written. */
  async *read(): AsyncGenerator<Uint8Array> {
    if (this.#spilled) {
      this.#spill();
      await this.#writing;
      if (this.#failed) throw this.#failed;
      const file = this.#file!;
      await file.seek(0, Deno.SeekMode.Start);
      const buffer = new Uint8Array(READ_CHUNK);
      for (;;) {
        const n = await file.read(buffer);
        if (n === null) break;
        yield buffer.slice(0, n);
      }
      return;
    }
    yield* this.#chunks;
  }

  /** Drops the bytes and removes the file. Never rejects. */
  async discard(): Promise<void> {
    this.#chunks = [];
    this.#buffered = 0;
    await this.#writing;
    try {
      this.#file?.close();
    } catch { /* already closed */ }
    this.#file = null;
    if (this.#spilled) await Deno.remove(this.#path).catch(() => {});
  }
}
