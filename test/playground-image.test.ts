// The playground's Image tab in headless Chromium (Debian's /usr/bin/chromium, via playwright-core),
// against `slipstream serve --image-model` on the tiny SD 1.x pipeline fixture: the tab appears
// because the server lists an image model, the progress bar follows the denoising steps, the
// picture shown is diffusers' (same settings as the sd1-noguide fixture, within 2/255), a download
// link carries it, and a bad size shows the server's error. Screenshot in test-artifacts/.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { decodeImage } from '../src/formats/image.ts';
import { startServe, type ServeProcess } from '../src/server/process.ts';
import { chromiumSkip, launchChromium, type Browser } from './helpers/chromium.ts';

const FIX = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline');
const artifacts = join(import.meta.dirname, '..', 'test-artifacts');

describe('playground Image tab in headless Chromium', { skip: chromiumSkip }, () => {
  let srv: ServeProcess, browser: Browser, page: Page;

  before(async () => {
    srv = await startServe(['--image-model', join(FIX, 'sd1')], { SLIPSTREAM_THREADS: '2' });
    browser = await launchChromium(20_000);
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  it('generates a picture with a progress bar and a download link', { timeout: 60_000 }, async () => {
    await page.goto(srv.url + '/');
    await page.waitForSelector('#image-mode:not([hidden])');
    await page.check('input[name="mode"][value="image"]');
    assert.equal(await page.isVisible('#image-view'), true);
    assert.equal(await page.isVisible('#chat-view'), false);
    await page.fill('#image-prompt', 'a lighthouse');
    await page.fill('#image-steps', '2');
    await page.fill('#image-guidance', '1');
    await page.fill('#image-size', '32x32');
    await page.fill('#image-seed', '4');
    await page.selectOption('#image-scheduler', 'euler');
    await page.click('#image-send');
    await page.waitForSelector('#image-figure:not([hidden])');
    assert.equal(await page.$eval('#image-progress', (p) => (p as HTMLProgressElement).value), 1);
    assert.equal(await page.textContent('#image-status'), 'Done.');
    const src = await page.$eval('#image-output', (i) => (i as HTMLImageElement).src);
    const img = decodeImage(Buffer.from(src.replace(/^data:image\/png;base64,/, ''), 'base64'));
    const want = new Uint8Array(readFileSync(join(FIX, 'sd1-noguide.u8')));
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(img.data[i]! - want[i]!));
    assert.ok(worst <= 2, `largest difference ${worst}`);
    assert.equal(await page.$eval('#image-download', (a) => (a as HTMLAnchorElement).download), 'slipstream-4.png');
    assert.equal(await page.$eval('#image-download', (a) => (a as HTMLAnchorElement).href), src);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'playground-image.png'), fullPage: true });
  });

  it('shows the server\'s error for a bad size', { timeout: 30_000 }, async () => {
    await page.fill('#image-size', '31x31');
    await page.click('#image-send');
    await page.waitForFunction(() => (document.getElementById('error')?.textContent ?? '').includes('multiple of'));
    assert.equal(await page.isEnabled('#image-send'), true);
  });
});
