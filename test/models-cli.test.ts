// `slipstream pull | list | rm` against a local mock of the Hugging Face hub (no network): a pull
// lands in the cache and loads offline, an interrupted pull resumes where it stopped, `list` shows
// name, revision, size, family and quantization of safetensors and GGUF models, `rm` removes one
// revision keeping the blobs another still uses, then the whole model.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeRandomHfModel } from '../src/models/random.ts';
import { MockHub, type MockFile } from './helpers/mock-hub.ts';
import { startServe, type ServeProcess } from '../src/server/process.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');

let root: string, cache: string, hub: MockHub;
let tinyFiles: MockFile[];
let commitMain: string, commitV1: string;
let stBytes: number;

/** The CLI against the mock hub and the test's cache; async, so this process keeps serving the hub. */
function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, SLIPSTREAM_THREADS: '2', SLIPSTREAM_CACHE: cache, HF_ENDPOINT: hub.url, ...extraEnv };
  for (const k of ['HF_TOKEN', 'HF_HUB_OFFLINE', 'XDG_CACHE_HOME']) if (!(k in extraEnv)) delete env[k];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'ss-models-'));
  cache = join(root, 'cache');
  const dir = join(root, 'tiny');
  writeRandomHfModel(dir, { arch: 'llama', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 128 }, 3);
  tinyFiles = readdirSync(dir).map((f) => ({ path: f, content: readFileSync(join(dir, f)), lfs: f.endsWith('.safetensors') }));
  stBytes = readFileSync(join(dir, 'model.safetensors')).length;
  const gguf = join(root, 'tiny-q8_0.gguf');
  const c = spawnSync(process.execPath, [bin, 'convert', dir, gguf, '--type', 'q8_0'], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);

  hub = await MockHub.start();
  commitMain = hub.addRepo('org/tiny', [...tinyFiles, { path: 'README.md', content: '# tiny' }]);
  // v1: the same files but another config: every blob but config.json's is shared with main
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  commitV1 = hub.addRepo('org/tiny', tinyFiles.map((f) => (f.path === 'config.json' ? { ...f, content: JSON.stringify({ ...cfg, rms_norm_eps: 1e-6 }) } : f)), 'v1');
  hub.addRepo('org/tiny-gguf', [{ path: 'tiny-q8_0.gguf', content: readFileSync(gguf), lfs: true }]);
});
after(async () => {
  await hub?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('slipstream pull / list / rm', () => {
  it('pull downloads into the cache, prints the folder, and the model then loads offline', async () => {
    const r = await cli(['pull', 'hf:org/tiny']);
    assert.equal(r.status, 0, r.stderr);
    const snap = join(cache, 'models--org--tiny', 'snapshots', commitMain);
    assert.equal(r.stdout.trim(), snap);
    assert.match(r.stderr, new RegExp(`pulled hf:org/tiny@main \\(commit ${commitMain.slice(0, 7)}, [\\d.]+ kB, llama, f32\\)`));
    assert.match(r.stderr, /model\.safetensors: [\d.]+ kB in/); // the per-file progress line off a terminal
    assert.ok(!existsSync(join(snap, 'README.md')));
    const again = await cli(['pull', 'org/tiny']); // a bare name is a hub repo; nothing is fetched twice
    assert.equal(again.status, 0, again.stderr);
    assert.equal(hub.downloads().filter((d) => d.path.includes('model.safetensors')).length, 1);
    const g = await cli(['generate', '-m', 'hf:org/tiny', '-p', 'hi', '-n', '3', '--ignore-eos'], { HF_HUB_OFFLINE: '1' });
    assert.equal(g.status, 0, g.stderr);
    assert.match(g.stderr, /generated 3 tokens/);
  });

  it('an interrupted pull fails in one line, lists as incomplete, and resumes with a Range request', async () => {
    hub.reset();
    hub.failNext(4000, 4); // every try breaks off after 4000 bytes
    const r = await cli(['pull', 'hf:org/tiny-gguf/tiny-q8_0.gguf']);
    assert.equal(r.status, 1, r.stderr);
    const errLines = r.stderr.trim().split('\n').filter((l) => l.startsWith('slipstream: error'));
    assert.equal(errLines.length, 1, r.stderr);
    assert.match(errLines[0]!, /download failed after 4 tries .* run again to resume/);
    const l = await cli(['list']);
    assert.match(l.stdout, /incomplete: pull again to resume/);
    hub.reset();
    const r2 = await cli(['pull', 'hf:org/tiny-gguf/tiny-q8_0.gguf']);
    assert.equal(r2.status, 0, r2.stderr);
    const gets = hub.downloads();
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.range, 'bytes=16000-'); // four tries of 4000 bytes each were kept
    assert.match(r2.stderr, /pulled hf:org\/tiny-gguf\/tiny-q8_0\.gguf@main \(commit \w{7}, [\d.]+ kB, llama, q8_0\)/);
  });

  it('list shows name, revision, commit, size, family and quantization; --json for scripts', async () => {
    hub.reset();
    const v1 = await cli(['pull', 'hf:org/tiny@v1']);
    assert.equal(v1.status, 0, v1.stderr);
    const r = await cli(['list']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+REVISION\s+COMMIT\s+SIZE\s+FAMILY\s+QUANT\s+MODIFIED$/);
    const row = (re: RegExp) => lines.find((l) => re.test(l));
    assert.ok(row(new RegExp(`^hf:org/tiny\\s+main\\s+${commitMain.slice(0, 7)}\\s+[\\d.]+ kB\\s+llama\\s+f32\\s+just now$`)), r.stdout);
    assert.ok(row(new RegExp(`^hf:org/tiny\\s+v1\\s+${commitV1.slice(0, 7)}\\s+`)), r.stdout);
    assert.ok(row(/^hf:org\/tiny-gguf\/tiny-q8_0\.gguf\s+main\s+\w{7}\s+[\d.]+ kB\s+llama\s+q8_0\s+just now$/), r.stdout);
    const j = await cli(['list', '--json']);
    const rows = JSON.parse(j.stdout) as { name: string; revision: string; bytes: number; family: string; quantization: string; complete: boolean }[];
    assert.equal(rows.length, 3);
    const main = rows.find((x) => x.revision === 'main' && x.name === 'hf:org/tiny')!;
    assert.ok(main.bytes >= stBytes && main.complete);
  });

  it('rm of one revision keeps the blobs the other still uses; rm of the model removes it all', async () => {
    const blobs = () => readdirSync(join(cache, 'models--org--tiny', 'blobs')).filter((b) => !b.endsWith('.incomplete'));
    const before = blobs();
    const r = await cli(['rm', 'hf:org/tiny@v1']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /removed hf:org\/tiny@v1 \(v1\), freed [\d.]+ B/);
    assert.equal(blobs().length, before.length - 1, 'only v1 config.json blob goes');
    const l = await cli(['list']);
    assert.doesNotMatch(l.stdout, /\sv1\s/);
    const g = await cli(['generate', '-m', 'hf:org/tiny', '-p', 'hi', '-n', '2'], { HF_HUB_OFFLINE: '1' });
    assert.equal(g.status, 0, g.stderr);

    const bad = await cli(['rm', 'hf:org/tiny@v9']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^slipstream: error: hf:org\/tiny@v9: revision v9 is not in the cache \(cached revisions: main\)\n$/);
    const all = await cli(['rm', 'org/tiny', 'hf:org/tiny-gguf/tiny-q8_0.gguf']);
    assert.equal(all.status, 0, all.stderr);
    assert.match(all.stderr, /removed hf:org\/tiny \(main\), freed [\d.]+ kB/);
    assert.ok(!existsSync(join(cache, 'models--org--tiny')));
    assert.ok(!existsSync(join(cache, 'models--org--tiny-gguf')));
    const none = await cli(['list']);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /no models in/);
    const gone = await cli(['rm', 'hf:org/tiny']);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /hf:org\/tiny: not in the cache/);
  });
});

describe('slipstream serve with several --model flags', () => {
  let srv: ServeProcess;
  let a: string, b: string;
  before(async () => {
    a = join(root, 'tiny'); // written above
    b = join(root, 'other');
    writeRandomHfModel(b, { arch: 'llama', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 256 }, 9);
    srv = await startServe(['-m', `first=${a}`, '-m', b], { SLIPSTREAM_THREADS: '2' });
  });
  after(async () => {
    if (srv?.child.exitCode === null) await srv.stop();
  });
  const post = async (path: string, body: object) => {
    const res = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it('lists every model by name with its own context, and says so at start-up', async () => {
    assert.match(srv.stderr(), /serving first, other at http/);
    const models = (await (await fetch(`${srv.url}/v1/models`)).json()) as { data: { id: string; max_model_len: number }[] };
    assert.deepEqual(models.data.map((m) => [m.id, m.max_model_len]), [['first', 128], ['other', 256]]);
    const one = (await (await fetch(`${srv.url}/v1/models/other`)).json()) as { id: string };
    assert.equal(one.id, 'other');
  });

  it('a request picks its model by name (the same text as that model alone); no name means the first', async () => {
    const ask = (model?: string) => post('/v1/completions', { ...(model ? { model } : {}), prompt: 'the old man', max_tokens: 8, temperature: 0, ignore_eos: true });
    const [ra, rb, rn] = await Promise.all([ask('first'), ask('other'), ask()]);
    assert.equal(ra.status, 200, JSON.stringify(ra.body));
    assert.equal(ra.body.model, 'first');
    assert.equal(rb.body.model, 'other');
    assert.equal(rn.body.model, 'first');
    assert.equal(rn.body.choices[0].text, ra.body.choices[0].text);
    assert.notEqual(ra.body.choices[0].text, rb.body.choices[0].text);
    for (const [dir, r] of [[a, ra], [b, rb]] as const) {
      const g = await cli(['generate', '-m', dir, '-p', 'the old man', '-n', '8', '--temperature', '0', '--ignore-eos']);
      assert.equal(g.stdout.replace(/\n$/, ''), r.body.choices[0].text);
    }
    // the context check is the model's own: 200 tokens fit 'other' (256) but not 'first' (128)
    const long = await post('/v1/completions', { model: 'first', prompt: 'x', max_tokens: 200 });
    assert.equal(long.status, 400);
    const fits = await post('/v1/completions', { model: 'other', prompt: 'x', max_tokens: 200, ignore_eos: true });
    assert.equal(fits.status, 200, JSON.stringify(fits.body));
    const tok = await post('/tokenize', { model: 'other', prompt: 'hello' });
    assert.equal(tok.body.max_model_len, 256);
  });

  it('an unknown model is a 404 naming the served ones', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-4', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'model_not_found');
    assert.equal(r.body.error.message, "the model 'gpt-4' does not exist; this server serves 'first', 'other'");
    const bad = await post('/v1/completions', { model: 7, prompt: 'x' });
    assert.equal(bad.status, 400);
  });

  it('two models under one name are refused in one line', async () => {
    const r = await cli(['serve', '-m', a, '-m', a, '--port', '0']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^slipstream: error: two models are served as 'tiny'; give each its own name \(--model NAME=MODEL\)\n$/m);
  });
});
