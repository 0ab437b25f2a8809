/**
 * Launches the machine's headless Chromium (Debian package `chromium`) for
 * browser tests, through playwright-core, with a fresh profile directory.
 * A missing browser fails loudly: browser tests must not skip in CI.
 *
 * @module
 */
import { type BrowserContext, chromium } from "playwright-core";

/** Where Debian installs Chromium. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** The apt line that installs it (CI runs this). */
export const CHROMIUM_INSTALL =
  "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium";

/** Flags for a quiet, sandbox-free headless run that talks to nothing but the test. */
export const CHROMIUM_ARGS: string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A launched browser: one context on a throw-away profile. */
export interface TestBrowser extends AsyncDisposable {
  context: BrowserContext;
  /** Closes the browser and removes the profile. */
  close(): Promise<void>;
}

/**
 * Launches Chromium with a new user-data-dir. Throws, naming the apt
 * package, when `/usr/bin/chromium` is missing.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `${CHROMIUM_PATH} not found: browser tests need the Debian package "chromium" ` +
        `(${CHROMIUM_INSTALL})`,
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "relay-chromium-" });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
  } catch (error) {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw error;
  }
  let closed: Promise<void> | null = null;
  const close = () =>
    closed ??= (async () => {
      await context.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    })();
  return { context, close, [Symbol.asyncDispose]: close };
}
