// The web playground at GET /, end to end: a real `slipstream serve` process on the embedded
// default models (no --model: the default LLM and the default image model; API key on) driven through headless Chromium (Debian's /usr/bin/chromium,
// via playwright-core). The page asks for the key once and keeps it, streams a chat reply token by
// token, runs a plain completion, and its Stop button cancels a long generation so that the
// server's running-request count returns to 0; a /metrics poll that never answers does not
// freeze the status panel. Each chat turn is fitted to the context left (the oldest turns are
// left out, with a note, when it is full). Screenshots are kept in test-artifacts/.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { startServe, type ServeProcess } from '../src/server/process.ts';
import { chromiumSkip, launchChromium, type Browser } from './helpers/chromium.ts';

const KEY = 'sekret';
const artifacts = join(import.meta.dirname, '..', 'test-artifacts');
const skip = chromiumSkip;

let srv: ServeProcess | undefined, url: string;

const metric = (name: string) => srv!.metric(name);

/** Polls the server's metric until it equals `want` (or gives up after ~10 s). */
async function metricBecomes(name: string, want: number): Promise<number> {
  let v = NaN;
  for (let i = 0; i < 200; i++) {
    v = await metric(name);
    if (v === want) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return v;
}

before(async () => {
  // One compute thread: the default model is small, and the Stop test needs its long generation
  // to still be running when the button is clicked.
  srv = await startServe(['--api-key', KEY], { SLIPSTREAM_THREADS: '1' });
  url = srv.url;
});

after(() => {
  if (srv && srv.child.exitCode === null) srv.child.kill('SIGKILL');
});

describe('playground assets', () => {
  it('GET / and its assets are served with their content types, without the API key', async () => {
    const cases: [string, RegExp, string][] = [
      ['/', /^text\/html/, '<script type="module" src="/playground/app.js">'],
      ['/playground/app.js', /^text\/javascript/, '/v1/chat/completions'],
      ['/playground/style.css', /^text\/css/, ':focus-visible'],
    ];
    for (const [path, type, needle] of cases) {
      const res = await fetch(url + path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', type, path);
      assert.ok((await res.text()).includes(needle), `${path} has ${needle}`);
    }
    // The API itself still needs the key.
    assert.equal((await fetch(`${url}/v1/models`)).status, 401);
  });
});

describe('playground in headless Chromium', { skip }, () => {
  let browser: Browser, page: Page;

  before(async () => {
    browser = await launchChromium();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
  });

  /** Waits until the element's text is `want`; on timeout, fails with what the panel showed. */
  async function panelShows(selector: string, want: string, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    let seen: string | null = null;
    while (Date.now() < end) {
      seen = await page.textContent(selector);
      if (seen === want) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    const note = await page.textContent('#st-note');
    assert.fail(`${selector} shows ${JSON.stringify(seen)} after ${ms} ms, not ${JSON.stringify(want)} (status note: ${JSON.stringify(note)}; server: ${await metric('slipstream_requests_running')} running)`);
  }

  it('asks for the API key once, by keyboard, and keeps it', { timeout: 30_000 }, async () => {
    await page.goto(url + '/');
    await page.waitForSelector('#key-dialog[open]');
    // The key field has focus: type and press Enter, no mouse.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'key-input');
    await page.keyboard.type(KEY);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('model-name')!.textContent === 'slipstream-default, default-image (images)');
    assert.equal(await page.evaluate(() => localStorage.getItem('slipstream.apiKey')), KEY);

    await page.reload();
    await page.waitForFunction(() => document.getElementById('model-name')!.textContent === 'slipstream-default, default-image (images)');
    assert.equal(await page.evaluate(() => (document.getElementById('key-dialog') as HTMLDialogElement).open), false);
  });

  it('labels every control, and fits a 200%-zoomed window', { timeout: 30_000 }, async () => {
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, textarea, select, meter')]
        .filter((el) => (el as HTMLInputElement).labels?.length === 0 && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
    const nameless = await page.evaluate(() => [...document.querySelectorAll('button')].filter((b) => b.textContent!.trim() === '').length);
    assert.equal(nameless, 0);
    // 1280 px at 200% zoom lays out like a 640 px window: no sideways scrolling.
    await page.setViewportSize({ width: 640, height: 900 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 640px`);
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('streams a chat reply token by token, with live figures', { timeout: 30_000 }, async () => {
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '40');
    await page.check('#ignore-eos');
    // Record every text the reply shows: each update replaces the reply's text node, so the
    // added nodes are exactly what was on screen, in order.
    await page.evaluate(() => {
      const w = window as unknown as { seen: string[] };
      w.seen = [];
      new MutationObserver((records) => {
        for (const r of records) {
          const el = r.target as Element;
          if (el.classList?.contains('text') && el.closest('.msg.assistant')) for (const n of r.addedNodes) w.seen.push(n.textContent ?? '');
        }
      }).observe(document.getElementById('chat-log')!, { childList: true, subtree: true });
    });
    await page.focus('#chat-input');
    await page.keyboard.type('Once upon a time, a little fox');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-state') === 'done');

    const user = await page.textContent('#chat-log .msg.user .text');
    assert.equal(user, 'Once upon a time, a little fox');
    const reply = (await page.textContent('#chat-log .msg.assistant:last-child .text'))!;
    // the reply reads as one: the next paragraph of the story, starting at a word (issue 19)
    assert.match(reply, /^\S/, `the reply starts with a word: ${JSON.stringify(reply.slice(0, 20))}`);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.ok(seen.length >= 5, `the reply appeared in ${seen.length} steps`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.startsWith(seen[i - 1]!) && seen[i]!.length > seen[i - 1]!.length, 'each step extends the last');
    assert.equal(seen.at(-1), reply);
    const stats = (await page.textContent('#chat-log .msg.assistant:last-child .stats'))!;
    assert.match(stats, /TTFT \d+ ms · [\d.]+ tok\/s · 40 tokens · finished: length/);
  });

  it('runs a plain completion', { timeout: 30_000 }, async () => {
    await page.check('input[name="mode"][value="completion"]');
    assert.equal(await page.isVisible('#completion-view'), true);
    assert.equal(await page.isVisible('#chat-view'), false);
    await page.fill('#max-tokens', '12');
    await page.fill('#completion-input', 'Tom and his dog');
    await page.click('#completion-send');
    await page.waitForFunction(() => document.getElementById('completion-output')!.dataset.state === 'done');
    assert.ok((await page.textContent('#completion-output'))!.length > 0);
    // the output box shows the prompt then the completion: no blank line or indent before them
    assert.equal(await page.evaluate(() => (document.querySelector('#completion-view .output') as HTMLElement).innerText.slice(0, 15)), 'Tom and his dog');
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'playground-completion.png') });
    assert.match((await page.textContent('#completion-stats'))!, /12 tokens · finished: length/);
    await page.check('input[name="mode"][value="chat"]');
  });

  it('fits each chat turn to the context left with the page defaults; drops the oldest turns when full, saying so', { timeout: 60_000 }, async () => {
    // The page's defaults (max tokens 256) on a 512-token model, with replies that run to their
    // limit: the second turn's prompt is already ~270 tokens, so 256 more would not fit.
    await page.click('#chat-clear');
    await page.fill('#max-tokens', '256');
    await page.check('#ignore-eos');
    const sent: { max_tokens?: number; messages: unknown[] }[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/v1/chat/completions')) sent.push(JSON.parse(r.postData() ?? '{}'));
    });
    const turn = async (text: string, n: number) => {
      await page.fill('#chat-input', text);
      await page.click('#chat-send');
      await page.waitForFunction((k) => document.querySelectorAll('#chat-log .msg.assistant').length === k && document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-state') === 'done', n);
      assert.equal(await page.textContent('#error'), '');
    };
    await turn('Once upon a time, a little fox', 1);
    assert.equal(sent[0]!.max_tokens, 256);
    await turn('What happened next?', 2);
    assert.ok(sent[1]!.max_tokens! < 256 && sent[1]!.max_tokens! > 200, `the second turn asks for the room left: ${sent[1]!.max_tokens}`);
    assert.equal(sent[1]!.messages.length, 3);
    assert.match((await page.textContent('#chat-log .msg.assistant:last-child .stats'))!, new RegExp(`${sent[1]!.max_tokens} tokens · finished: length · max ${sent[1]!.max_tokens} tokens \\(the context's room\\)`));
    assert.equal(await page.locator('#chat-log .notice').count(), 0);
    // the third turn cannot fit after two full replies: the first turn is left out, and the page says so
    await turn('And then?', 3);
    assert.equal(sent[2]!.messages.length, 3, 'the oldest user message and its reply were left out');
    assert.equal((sent[2]!.messages[0] as { content: string }).content, 'What happened next?');
    assert.match((await page.textContent('#chat-log .notice'))!, /The 2 oldest messages no longer fit the model's 512-token context/);
    assert.equal(await page.locator('#chat-log .msg.dropped').count(), 2);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'playground-context.png'), fullPage: true });
  });

  it('stops a long generation with the Stop button; the server frees the request', { timeout: 45_000 }, async () => {
    // The default model often ends a story long before 480 tokens, and it decodes several hundred
    // tokens a second, so the request ignores end-of-sequence (the page's own checkbox), and Stop
    // is pressed from the keyboard as soon as text streams: a pointer click first waits for the
    // button to be stable, and the streaming text keeps moving the layout. (No page.route here:
    // interception passes the page's /metrics polls through Playwright too, and the panel check
    // below relies on them.)
    await page.check('#ignore-eos');
    await page.click('#chat-clear'); // a fresh conversation: the prompt plus max tokens must fit the context
    await page.fill('#max-tokens', '480');
    await page.fill('#chat-input', 'Tell me a long story');
    await page.click('#chat-send');
    // Streaming has begun (or the page reported an error, shown in the assertion).
    await page.waitForFunction(() => (document.querySelector('#chat-log .msg.assistant:last-child .text')?.textContent ?? '') !== '' || document.getElementById('error')!.textContent !== '');
    assert.equal(await page.textContent('#error'), '');
    await page.focus('#chat-stop');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-state') === 'stopped');
    const stats = (await page.textContent('#chat-log .msg.assistant:last-child .stats'))!;
    assert.match(stats, /· stopped$/);
    // it streamed, and stopped short of the 480 tokens it would otherwise have run to
    const tokens = Number(/(\d+) tokens? ·/.exec(stats)?.[1]);
    assert.ok(tokens > 0 && tokens < 480, stats);
    assert.equal(await metricBecomes('slipstream_requests_running', 0), 0);
    // The page's own status panel (polled from /metrics) shows it too.
    await panelShows('#st-running', '0');
    assert.match((await page.textContent('#st-kv'))!, /^\d+ \/ \d+ blocks/);
    assert.equal(await page.isEnabled('#chat-send'), true);

    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'playground.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual([...readFileSync(shot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]); // PNG signature
  });

  it('a /metrics poll that never answers does not freeze the status panel', { timeout: 30_000 }, async () => {
    // Hold one poll forever (its route is never continued); the page gives up on it, says so, and
    // the next poll, let through, brings the panel back.
    let held = 0;
    await page.route('**/metrics', (r) => {
      if (held++ === 0) return; // never answered
      return r.continue();
    });
    await panelShows('#st-note', 'Status unavailable (no answer in 3 s).');
    await panelShows('#st-note', '');
    assert.equal(await page.textContent('#st-running'), '0');
    assert.ok(held >= 2, `${held} polls reached the route`);
  });
});
