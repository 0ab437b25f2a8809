/**
 * Certificate reload: watch the certificate and key files and swap the
 * served context once the new pair parses and matches; the same reload runs
 * on demand (SIGHUP). A failed reload keeps the current certificate and says
 * so loudly, naming the file. Connections already open keep the certificate
 * they were accepted with; new handshakes get the new one.
 *
 * The folders holding the files are watched (not the files), so editors and
 * tools that write a temporary file and rename it over the old one, and
 * Kubernetes-style symlink swaps, are seen too. Events are debounced, and a
 * change is applied only when the bytes of the pair differ from the last
 * pair tried, so unrelated files in the same folder cost one read each.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import type { Logger } from "@logtape/logtape";
import { log } from "../observability/logger.ts";
import type { CertificateInfo, TlsContextProvider } from "./context.ts";

/** Options of {@linkcode startTlsReloader}. */
export interface TlsReloaderOptions {
  /** Watch the files' folders (`tls.reload`); when false only {@linkcode TlsReloader.reload} reloads. */
  watch: boolean;
  /** Quiet time after the last file event before reloading; default 300 ms. */
  debounceMs?: number;
  /** Warn when the served certificate expires within this many days; default 14. */
  expiryWarningDays?: number;
  /** The clock for the expiry warning. */
  now?: () => Date;
  /** Where outcomes are logged; default the `["relay","tls"]` category. */
  logger?: Logger;
}

/** The outcome of one reload. */
export type TlsReloadResult =
  | {
    /** The new pair is served. */
    ok: true;
    /** The certificate now served. */
    info: CertificateInfo;
    /** False when the reloaded certificate is the one served before. */
    changed: boolean;
  }
  | {
    /** The files could not be served; the previous certificate stays. */
    ok: false;
    /** Why (a `TlsMaterialError` names the file; messages never quote file contents). */
    error: Error;
    /** The certificate still served. */
    info: CertificateInfo;
  };

/** Reloads a {@linkcode TlsContextProvider} on file changes and on request. */
export interface TlsReloader {
  /**
   * Re-read the files now and log the outcome; never rejects.
   *
   * @param trigger What asked for it, for the log (`"SIGHUP"`, `"file change"`).
   */
  reload(trigger: string): Promise<TlsReloadResult>;
  /** Stop watching; waits for a reload in progress. */
  close(): Promise<void>;
  /** Resolves once the watch is set up and the current pair is the baseline. */
  readonly ready: Promise<void>;
  /** What the watch has done so far, so tests wait for a state instead of sleeping. */
  readonly activity: TlsWatchActivity;
}

/** Counters of a {@linkcode TlsReloader}'s watch. */
export interface TlsWatchActivity {
  /** Whether the folders are watched. */
  watching: boolean;
  /** File events taken into account. */
  events: number;
  /** Debounced checks finished (each compares the pair and reloads if it changed). */
  checks: number;
  /** A check is due (debounce timer armed) or running. */
  pending: boolean;
}

/**
 * Start reloading `provider`'s certificate and key: on file changes (when
 * `watch`) and on {@linkcode TlsReloader.reload}.
 *
 * @example
 * ```ts ignore
 * const tlsContext = await TlsContextProvider.load(config.tls);
 * const reloader = startTlsReloader(tlsContext, { watch: config.tls.reload });
 * Deno.addSignalListener("SIGHUP", () => void reloader.reload("SIGHUP"));
 * // ... at shutdown
 * await reloader.close();
 * ```
 *
 * @param provider The context the listeners serve.
 * @param options Whether to watch, debounce, expiry warning, logger.
 * @returns The running reloader; close it at shutdown.
 */
export function startTlsReloader(
  provider: TlsContextProvider,
  options: TlsReloaderOptions,
): TlsReloader {
  return new Reloader(provider, options);
}

class Reloader implements TlsReloader {
  readonly #provider: TlsContextProvider;
  readonly #debounceMs: number;
  readonly #warnMs: number;
  readonly #now: () => Date;
  readonly #logger: Logger;
  #watcher: Deno.FsWatcher | null = null;
  #watching: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #busy: Promise<unknown> = Promise.resolve();
  /** Digest of the cert+key bytes last tried, so unrelated events do not reload. */
  #lastTried: string | null = null;
  #closed = false;
  #events = 0;
  #checks = 0;
  #running = 0;
  readonly ready: Promise<void>;

  constructor(provider: TlsContextProvider, options: TlsReloaderOptions) {
    this.#provider = provider;
    this.#debounceMs = options.debounceMs ?? 300;
    this.#warnMs = (options.expiryWarningDays ?? 14) * 86_400_000;
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger ?? log("tls");
    if (options.watch) this.#startWatching();
    this.ready = this.#busy.then(() => {});
  }

  get activity(): TlsWatchActivity {
    return {
      watching: this.#watcher !== null,
      events: this.#events,
      checks: this.#checks,
      pending: this.#timer !== undefined || this.#running > 0,
    };
  }

  #startWatching(): void {
    const { cert, key } = this.#provider.paths;
    const dirs = [...new Set([dirname(resolve(cert)), dirname(resolve(key))])];
    // The files as loaded now are the baseline: only a different pair reloads.
    this.#busy = digestPair(cert, key).then((digest) => {
      this.#lastTried ??= digest;
    }, () => {});
    try {
      this.#watcher = Deno.watchFs(dirs, { recursive: false });
    } catch (error) {
      this.#logger.error(
        "cannot watch {dirs} for certificate changes ({error}); reload with SIGHUP instead",
        { dirs: dirs.join(", "), error: messageOf(error) },
      );
      return;
    }
    const watcher = this.#watcher;
    this.#watching = (async () => {
      try {
        for await (const event of watcher) {
          // "access" is a close after writing (already seen as "modify") or a read (ours).
          if (event.kind === "access" || event.kind === "other") continue;
          this.#events++;
          this.#schedule();
        }
      } catch (error) {
        if (!this.#closed) {
          this.#logger.error("certificate watch on {dirs} stopped: {error}", {
            dirs: dirs.join(", "),
            error: messageOf(error),
          });
        }
      }
      if (!this.#closed) {
        this.#logger.error(
          "certificate watch on {dirs} ended (folder removed?); reload with SIGHUP",
          { dirs: dirs.join(", ") },
        );
      }
    })();
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running++;
      this.#busy = this.#busy.then(() => this.#onChange()).finally(() => {
        this.#running--;
        this.#checks++;
      });
    }, this.#debounceMs);
  }

  async #onChange(): Promise<void> {
    if (this.#closed) return;
    const { cert, key } = this.#provider.paths;
    let digest: string | null;
    try {
      digest = await digestPair(cert, key);
    } catch {
      digest = null; // A file is missing right now (mid-rename): let reload() name it.
    }
    if (digest !== null && digest === this.#lastTried) return;
    this.#lastTried = digest;
    await this.#reload("file change");
  }

  reload(trigger: string): Promise<TlsReloadResult> {
    const run = this.#busy.then(async () => {
      const { cert, key } = this.#provider.paths;
      this.#lastTried = await digestPair(cert, key).catch(() => null);
      return await this.#reload(trigger);
    });
    this.#busy = run;
    return run;
  }

  async #reload(trigger: string): Promise<TlsReloadResult> {
    const before = this.#provider.info;
    try {
      await this.#provider.reload();
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      this.#logger.error(
        "TLS certificate reload ({trigger}) failed, still serving {subject} " +
          "(valid until {notAfter}): {error}",
        {
          trigger,
          subject: before.subject,
          notAfter: before.notAfter.toISOString(),
          error: err.message,
          file: "path" in err ? err.path : undefined,
        },
      );
      return { ok: false, error: err, info: before };
    }
    const info = this.#provider.info;
    const changed = info.fingerprintSha256 !== before.fingerprintSha256;
    this.#logger.info(
      changed
        ? "TLS certificate reloaded ({trigger}): {subject}, issuer {issuer}, valid until {notAfter}, SHA-256 {fingerprint}"
        : "TLS certificate reloaded ({trigger}), unchanged: {subject}, valid until {notAfter}",
      {
        trigger,
        subject: info.subject,
        issuer: info.issuer,
        notAfter: info.notAfter.toISOString(),
        fingerprint: info.fingerprintSha256,
      },
    );
    const now = this.#now().getTime();
    if (info.notAfter.getTime() <= now || info.notBefore.getTime() > now) {
      this.#logger.error(
        "the TLS certificate now served is not valid at this time: {from} to {to}",
        {
          from: info.notBefore.toISOString(),
          to: info.notAfter.toISOString(),
        },
      );
    } else if (info.notAfter.getTime() - now < this.#warnMs) {
      this.#logger.warn("the TLS certificate expires soon: {notAfter}", {
        notAfter: info.notAfter.toISOString(),
      });
    }
    return { ok: true, info, changed };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    await this.#watching;
    await this.#busy.catch(() => {});
  }
}

async function digestPair(cert: string, key: string): Promise<string> {
  const hash = createHash("sha256");
  hash.update(await Deno.readFile(cert));
  hash.update("\0");
  hash.update(await Deno.readFile(key));
  return hash.digest("hex");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
