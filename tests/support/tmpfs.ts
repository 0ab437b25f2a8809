/**
 * A real full disk for tests: a small tmpfs mounted on a temporary folder
 * (needs root, as in CI) and a file that fills it to the last block.
 *
 * @module
 */

/** Whether this process may mount a tmpfs (tests that need one are ignored otherwise). */
export const canMount: boolean = Deno.uid() === 0;

/** Mounts a tmpfs of `size` (e.g. `"2m"`) on a new temporary folder; `close` unmounts and removes it. */
export async function mountTmpfs(
  size: string,
  prefix = "relay-tmpfs-",
): Promise<{ dir: string; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
  }).output();
  if (mount.code !== 0) {
    await Deno.remove(dir);
    throw new Error(`mount tmpfs: ${new TextDecoder().decode(mount.stderr)}`);
  }
  return {
    dir,
    async close() {
      await new Deno.Command("umount", { args: [dir] }).output();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Fills the file system under `path` to its last block (a file at `path`); resolves with `path`. */
export async function fill(path: string): Promise<string> {
  const file = await Deno.open(path, { write: true, create: true });
  try {
    for (const size of [64 * 1024, 4096, 512, 1]) {
      const block = new Uint8Array(size);
      try {
        for (;;) await file.write(block);
      } catch { /* full at this block size */ }
    }
  } finally {
    file.close();
  }
  return path;
}
