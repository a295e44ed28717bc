// Debian's Chromium for the browser tests (driven by playwright-core): missing under CI is a
// failure, elsewhere a skip with the reason; launched headless on a fresh profile with the flags
// this sandbox needs (no background networking: the closed network refuses it).

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM) && process.env.CI) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium package (.ci/run installs it)`);
/** For `describe(..., { skip })`. */
export const chromiumSkip: string | false = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium); skipping the browser test`;

export interface Browser {
  ctx: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function launchChromium(timeoutMs = 15_000): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'ss-chromium-'));
  // launchPersistentContext passes the fresh profile as --user-data-dir.
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: 1280, height: 900 },
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(timeoutMs);
  return {
    ctx,
    page,
    close: async () => {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
