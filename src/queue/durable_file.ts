/**
 * Replacing a small file so that a crash leaves either the old or the new
 * content, never a torn one: write a temporary file beside it, fsync its
 * data, rename it over the target. The caller syncs the directory (grouped,
 * see {@link DirectorySync}) when the new name itself must be durable.
 *
 * @module
 */

/** Writes `data` to `path` through `<path>.tmp` + fdatasync + rename (mode 0600). */
export async function writeFileDurably(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    let offset = 0;
    while (offset < data.length) offset += await file.write(data.subarray(offset));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}
