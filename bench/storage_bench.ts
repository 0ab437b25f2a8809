/**
 * Spool storage candidates, measured in one run (issue 11): how many
 * messages per second each can make durable, and the CPU each costs.
 *
 * ```text
 * deno run --allow-all bench/storage_bench.ts [--count 2000] [--sizes 1024,10240]
 *                                             [--writers 1,12] [--dir DIR] [--json]
 * ```
 *
 * - `journal`: one append-only file; concurrent commits join a commit queue,
 *   and every group is written in one write and made durable by ONE
 *   `fdatasync` (records framed as length + CRC-32 + payload);
 * - `sqlite-single` / `sqlite-group`: `node:sqlite` `DatabaseSync` in WAL mode
 *   with `synchronous=FULL`, in a Worker (off the event loop), one insert per
 *   transaction, or the inserts that arrived while the last commit ran in one
 *   transaction (see `sqlite_worker.ts`);
 * - `relay-spool`: the relay's spool as built (`src/queue/spool.ts`,
 *   `SpoolWriter.commit`: SQLite WAL in its writer Worker with group commit,
 *   the message buffer transferred there and back); `relay-spool-delete`
 *   also deletes each message again in the background, as delivery does
 *   (its CPU counts; the rate is the commits'). (Until 2026-11-29 these rows
 *   were `spool-files` / `spool-files-unlink`: a file per message.)
 *
 * `--writers` is how many commits are in flight at once (as sessions would
 * be); each writer waits for its commit before the next. CPU is this
 * process's (all threads, the Worker included) from `/proc/self/stat`.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { Spool } from "../src/queue/spool.ts";
import { type Envelope, newQueueId } from "../src/mail/mod.ts";
import { readCpuMs } from "./cpu.ts";
import { alignTable, fixedOrDash, runTasks } from "./load.ts";

/** A way of making one message durable. */
interface Store {
  /** Resolves once `data` (with `envelope`) is durable. */
  commit(envelope: Envelope, data: Uint8Array): Promise<void>;
  /** Durable syncs (fdatasync or transaction commits) so far, when known. */
  syncs(): number | null;
  /** Resolves when background work (removals) is done; its CPU counts. */
  settle?(): Promise<void>;
  close(): Promise<void>;
}

/** One row of results. */
export interface StorageReport {
  store: string;
  size: number;
  writers: number;
  records: number;
  recordsPerSecond: number;
  cpuMsPerRecord: number | null;
  /** Records per durable sync (the group size), when known. */
  recordsPerSync: number | null;
}

const encoder = new TextEncoder();

/**
 * An append-only journal with group commit: appends that arrive while a
 * sync runs form the next group, written with one write and one fdatasync.
 */
class Journal implements Store {
  #file: Deno.FsFile;
  #pending: { bytes: Uint8Array; done: PromiseWithResolvers<void> }[] = [];
  #running = false;
  #syncs = 0;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  static async open(path: string): Promise<Journal> {
    return new Journal(await Deno.open(path, { create: true, append: true, mode: 0o600 }));
  }

  commit(envelope: Envelope, data: Uint8Array): Promise<void> {
    const header = encoder.encode(JSON.stringify(envelope) + "\n");
    const bytes = new Uint8Array(8 + header.length + data.length);
    bytes.set(header, 8);
    bytes.set(data, 8 + header.length);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, header.length + data.length);
    view.setUint32(4, crc32(bytes.subarray(8)));
    const done = Promise.withResolvers<void>();
    this.#pending.push({ bytes, done });
    if (!this.#running) void this.#run();
    return done.promise;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#pending.length > 0) {
        const group = this.#pending;
        this.#pending = [];
        const total = group.reduce((n, r) => n + r.bytes.length, 0);
        const all = new Uint8Array(total);
        let at = 0;
        for (const r of group) {
          all.set(r.bytes, at);
          at += r.bytes.length;
        }
        try {
          for (let written = 0; written < all.length;) {
            written += await this.#file.write(all.subarray(written));
          }
          await this.#file.syncData();
          this.#syncs++;
          for (const r of group) r.done.resolve();
        } catch (error) {
          for (const r of group) r.done.reject(error);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  syncs(): number {
    return this.#syncs;
  }

  close(): Promise<void> {
    this.#file.close();
    return Promise.resolve();
  }
}

/** node:sqlite in a Worker; `group` commits what queued up during the last commit at once. */
class SqliteStore implements Store {
  #worker: Worker;
  #waiting = new Map<number, PromiseWithResolvers<void>>();
  #next = 0;
  #syncs = 0;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<{ acks: number[]; error?: string }>) => {
      this.#syncs += event.data.error ? 0 : 1;
      for (const seq of event.data.acks) {
        const waiter = this.#waiting.get(seq);
        this.#waiting.delete(seq);
        if (event.data.error) waiter?.reject(new Error(event.data.error));
        else waiter?.resolve();
      }
    };
  }

  static async open(path: string, group: boolean): Promise<SqliteStore> {
    const worker = new Worker(new URL("./sqlite_worker.ts", import.meta.url), { type: "module" });
    const ready = Promise.withResolvers<void>();
    worker.onmessage = () => ready.resolve();
    worker.onerror = (event) => ready.reject(event.error ?? new Error(event.message));
    worker.postMessage({ open: path, group });
    await ready.promise;
    return new SqliteStore(worker);
  }

  commit(envelope: Envelope, data: Uint8Array): Promise<void> {
    const seq = this.#next++;
    const done = Promise.withResolvers<void>();
    this.#waiting.set(seq, done);
    this.#worker.postMessage({ seq, id: envelope.id, envelope: JSON.stringify(envelope), data });
    return done.promise;
  }

  syncs(): number {
    return this.#syncs;
  }

  close(): Promise<void> {
    this.#worker.terminate();
    return Promise.resolve();
  }
}

/**
 * The relay's spool (`SpoolWriter.commit`). With `unlink`, each committed
 * message is deleted again in the background, as delivery does a moment
 * later in the relay.
 */
class RelaySpool implements Store {
  #spool: Spool;
  #unlink: boolean;
  #removals = new Set<Promise<void>>();
  private constructor(spool: Spool, unlink: boolean) {
    this.#spool = spool;
    this.#unlink = unlink;
  }
  static async open(dir: string, unlink: boolean): Promise<RelaySpool> {
    return new RelaySpool(await Spool.open(dir), unlink);
  }
  async commit(envelope: Envelope, data: Uint8Array): Promise<void> {
    const writer = this.#spool.begin(envelope);
    writer.write(data);
    await writer.commit();
    if (this.#unlink) {
      const removal = this.#spool.remove(envelope.id).finally(() => this.#removals.delete(removal));
      this.#removals.add(removal);
    }
  }
  syncs(): null {
    return null;
  }
  async settle(): Promise<void> {
    await Promise.all(this.#removals);
  }
  async close(): Promise<void> {
    await this.settle();
    await this.#spool.close();
  }
}

const STORES = [
  "journal",
  "sqlite-single",
  "sqlite-group",
  "relay-spool",
  "relay-spool-delete",
] as const;
type StoreName = typeof STORES[number];

async function openStore(name: StoreName, dir: string): Promise<Store> {
  switch (name) {
    case "journal":
      return await Journal.open(join(dir, "journal.log"));
    case "sqlite-single":
      return await SqliteStore.open(join(dir, "spool.db"), false);
    case "sqlite-group":
      return await SqliteStore.open(join(dir, "spool.db"), true);
    case "relay-spool":
      return await RelaySpool.open(join(dir, "spool"), false);
    case "relay-spool-delete":
      return await RelaySpool.open(join(dir, "spool"), true);
  }
}

function envelopeFor(): Envelope {
  return {
    v: 1,
    id: newQueueId(),
    from: "bench@example.com",
    recipients: ["rcpt@example.net"],
    receivedAt: new Date().toISOString(),
    client: { address: "127.0.0.1", helo: "bench.localhost", user: "bench@example.com" },
  } as Envelope;
}

/** Measures one store with `writers` commits in flight. */
export async function measureStore(
  name: StoreName,
  options: { dir: string; size: number; writers: number; count: number },
): Promise<StorageReport> {
  const dir = await Deno.makeTempDir({ dir: options.dir, prefix: `${name}_` });
  const store = await openStore(name, dir);
  const data = new Uint8Array(options.size).fill(0x61);
  try {
    const run = (count: number) =>
      runTasks({
        count,
        concurrency: options.writers,
        task: () => store.commit(envelopeFor(), data),
      });
    await run(Math.min(200, options.count)); // warm-up: JIT, file and database creation
    await store.settle?.();
    const syncs0 = store.syncs();
    const cpu0 = await readCpuMs("self");
    const result = await run(options.count);
    await store.settle?.();
    const cpu1 = await readCpuMs("self");
    const syncs1 = store.syncs();
    if (result.failed > 0) throw new Error(`${name}: ${[...result.errors.keys()].join("; ")}`);
    return {
      store: name,
      size: options.size,
      writers: options.writers,
      records: result.ok,
      recordsPerSecond: result.ok / (result.wallMs / 1000),
      cpuMsPerRecord: cpu0 === null || cpu1 === null ? null : (cpu1 - cpu0) / result.ok,
      recordsPerSync: syncs0 === null || syncs1 === null || syncs1 === syncs0
        ? null
        : result.ok / (syncs1 - syncs0),
    };
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Formats the reports as an aligned table. */
export function formatStorageTable(reports: StorageReport[]): string {
  const header = ["store", "size", "writers", "records", "records/s", "CPU ms/record", "per sync"];
  const rows = reports.map((r) => [
    r.store,
    String(r.size),
    String(r.writers),
    String(r.records),
    fixedOrDash(r.recordsPerSecond, 0),
    fixedOrDash(r.cpuMsPerRecord, 3),
    fixedOrDash(r.recordsPerSync, 1),
  ]);
  return alignTable(header, rows, 1);
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      count: { type: "string", default: "2000" },
      sizes: { type: "string", default: "1024,10240" },
      writers: { type: "string", default: "1,12" },
      stores: { type: "string", default: STORES.join(",") },
      dir: { type: "string" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const numbers = (text: string) => text.split(",").map(Number).filter((n) => n > 0);
  const stores = values.stores.split(",") as StoreName[];
  for (const s of stores) if (!STORES.includes(s)) throw new Error(`unknown store ${s}`);
  const root = await Deno.makeTempDir({ dir: values.dir, prefix: "relay_storage_bench_" });
  const reports: StorageReport[] = [];
  try {
    for (const size of numbers(values.sizes)) {
      for (const writers of numbers(values.writers)) {
        // Interleaved: every store at this size and concurrency before the next.
        for (const name of stores) {
          const report = await measureStore(name, {
            dir: root,
            size,
            writers,
            count: Number(values.count),
          });
          reports.push(report);
          if (values.json) console.log(JSON.stringify(report));
        }
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  if (!values.json) console.log(formatStorageTable(reports));
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
