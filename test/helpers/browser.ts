import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`); .ci/run installs it when missing. */
export const CHROMIUM = process.env.SETTLE_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Git-ignored: screenshots of every console page, for a reviewer to look at. */
export const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test-artifacts/console');

/**
 * Headless Chromium with nothing that phones home. Playwright gives every launch a fresh,
 * temporary profile (user data directory), removed when the browser closes.
 */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // no crash reporter: it outlives the browser as a process of its own
      '--disable-breakpad', '--disable-crash-reporter',
    ],
  });
}

/**
 * True when Chromium is there. Without it the browser tests are skipped, except under CI=true,
 * where they fail: CI installs it.
 */
export function chromiumOrSkip(t: { skip: (msg: string) => void }): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true') throw new Error(`Chromium is missing at ${CHROMIUM}: apt-get install -y chromium`);
  t.skip(`no Chromium at ${CHROMIUM}`);
  return false;
}

export function artifactPath(...parts: string[]): string {
  const path = join(ARTIFACTS, ...parts);
  mkdirSync(dirname(path), { recursive: true });
  return path;
}
