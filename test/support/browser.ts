/**
 * Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by
 * playwright-core (no bundled browser download), with a fresh profile in a
 * temp dir that is removed on close, and no network traffic of its own
 * (no QUIC, sync, component updates or first-run pings), so everything the
 * page fetches is what the test served.
 *
 * The browser is a system package installed by
 * `node common/bin/ensure-system-deps.mjs --with-browser`; when it is absent
 * launchChromium throws saying so (browser tests do not skip silently).
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

export const chromiumPath = "/usr/bin/chromium";

/** Flags every test browser runs with (headless comes from playwright's `headless: true`). */
export const chromiumArgs: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Muted media may start without a user gesture; a player test must not wait for a click.
  "--autoplay-policy=no-user-gesture-required",
];

export interface TestBrowser {
  readonly context: BrowserContext;
  readonly userDataDir: string;
  newPage(): Promise<Page>;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** Browser launch bound; a browser that does not start within it is an error. */
  launchTimeoutMs?: number;
  viewport?: { width: number; height: number };
}

export async function launchChromium(opts: LaunchOptions = {}): Promise<TestBrowser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `${chromiumPath} is missing: install it with \`node common/bin/ensure-system-deps.mjs --with-browser\` (as root), or \`sudo apt-get install -y chromium\``,
    );
  }
  const userDataDir = await mkdtemp(join(tmpdir(), "understudy-chromium-"));
  let context: BrowserContext;
  try {
    // A persistent context is the only way to choose the profile directory,
    // so each run starts from an empty one we own and delete.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [...chromiumArgs],
      timeout: opts.launchTimeoutMs ?? 30_000,
      viewport: opts.viewport ?? { width: 800, height: 480 },
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    userDataDir,
    newPage: () => context.newPage(),
    async close() {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
