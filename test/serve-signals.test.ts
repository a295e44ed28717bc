// `slipstream serve` stops however it was started: SIGTERM to the server itself, to `npx slipstream
// serve` (npm runs the bin through `sh -c`, and the signal never reaches the server: it notices
// that its launcher is gone and drains), or its launcher dying outright. In each case the port
// stops answering within a few seconds and no process is left. New requests during the drain get
// 503 with Retry-After. On a tiny random model, with the real engine.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';
import { freePort, startServe } from '../src/server/process.ts';

const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'slipstream.js');
let root: string, model: string;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-signals-'));
  model = join(root, 'tiny');
  writeRandomHfModel(model, { ...TINY_SPECS.llama, maxPosition: 512 }, 5);
});
after(() => rmSync(root, { recursive: true, force: true }));

async function answers(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, cond: () => Promise<boolean> | boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
  return Date.now() - t0;
}

/** Pids of live processes whose command line holds `needle` (Linux /proc). */
function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1];
      if (cmd.includes(needle) && state !== 'Z') out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

function killAll(needle: string): void {
  for (const pid of pidsWith(needle)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

describe('serve stops under any launcher', { skip: !existsSync('/proc/self/cmdline') && 'needs /proc' }, () => {
  it('direct: SIGTERM drains; new requests meanwhile get 503 with Retry-After; exit 0', async () => {
    const srv = await startServe(['-m', model], { SLIPSTREAM_THREADS: '1' });
    try {
      assert.match(srv.stderr(), new RegExp(`serving tiny at ${srv.url}/v1 .*; playground at ${srv.url}/\n`), 'the start-up line names the playground');
      const inflight = fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 200, ignore_eos: true }) });
      await waitUntil('the request runs', async () => (await srv.metric('slipstream_requests_running')) === 1, 10_000);
      const exited = srv.stop();
      await waitUntil('draining', () => srv.stderr().includes('SIGTERM: no new requests'), 5000);
      const r = await fetch(`${srv.url}/v1/models`);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'shutting_down');
      assert.equal((await inflight).status, 200, 'the in-flight request finishes');
      assert.equal(await exited, 0);
      assert.equal(await answers(srv.url), false);
    } finally {
      if (srv.child.exitCode === null) srv.child.kill('SIGKILL');
    }
  });

  it('the launcher is SIGKILLed: the server notices, drains and exits', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // A launcher that starts the server and then just waits (as a supervisor or a script would).
    const launcher = spawn(process.execPath, ['-e', `require('child_process').spawn(process.execPath, ${JSON.stringify([bin, 'serve', '-m', model, '--port', String(port)])}, { stdio: 'inherit' }); setInterval(() => {}, 1000)`], {
      stdio: 'ignore',
      env: { ...process.env, SLIPSTREAM_THREADS: '1' },
    });
    try {
      await waitUntil('the server answers', () => answers(url), 60_000);
      launcher.kill('SIGKILL');
      const ms = await waitUntil('the port stops answering', async () => !(await answers(url)), 8000);
      assert.ok(ms < 8000);
      await waitUntil('no process left', () => pidsWith(`--port ${port}`).length === 0, 5000);
    } finally {
      launcher.kill('SIGKILL');
      killAll(`--port ${port}`);
    }
  });

  it('npx: SIGTERM to `npx slipstream serve` stops the server and leaves no process', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const cache = join(root, 'npm-cache');
    let err = '';
    const npx: ChildProcess = spawn('npx', ['slipstream', 'serve', '-m', model, '--port', String(port)], {
      cwd: repo,
      stdio: ['ignore', 'ignore', 'pipe'],
      // A private npm cache (npx links this checkout there), no install script (the native core is
      // built already: install-native.test.ts covers that step), no network.
      env: { ...process.env, SLIPSTREAM_THREADS: '1', npm_config_cache: cache, npm_config_ignore_scripts: 'true', npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    });
    npx.stderr!.on('data', (d) => (err += d));
    try {
      await waitUntil(`npx slipstream serve answers (stderr: ${err})`, () => answers(url), 90_000);
      assert.ok(pidsWith(`--port ${port}`).length >= 2, 'npm, and the server under it');
      const npxExit = new Promise((r) => npx.on('exit', r));
      npx.kill('SIGTERM');
      await npxExit;
      await waitUntil('the port stops answering', async () => !(await answers(url)), 5000);
      await waitUntil(`no process left (${pidsWith(`--port ${port}`)})`, () => pidsWith(`--port ${port}`).length === 0, 5000);
      assert.match(err, /the launching process \(pid \d+\) exited: no new requests/);
    } finally {
      npx.kill('SIGKILL');
      killAll(`--port ${port}`);
    }
  });
});
