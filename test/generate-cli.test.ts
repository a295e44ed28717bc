// `slipstream generate` and `slipstream convert` as a user runs them, on tiny random models,
// including the bad inputs a new user produces: each a one-line error naming the file and the
// problem, and a non-zero exit code.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GGML_TYPE, writeGguf } from '../src/formats/gguf.ts';
import { writeRandomHfModel } from '../src/models/random.ts';
import { randomVocabMetadata } from '../src/models/random.ts';
import { configToGgufMetadata } from '../src/formats/model-config.ts';
import { specToConfig } from '../src/models/random.ts';
import { readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { MockHub } from './helpers/mock-hub.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, SLIPSTREAM_THREADS: '2' } });

let root: string, dir: string;
const spec = { arch: 'llama' as const, vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 128 };
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-gen-'));
  dir = join(root, 'tiny');
  writeRandomHfModel(dir, spec, 11);
  const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  tc.chat_template = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('slipstream generate', () => {
  it('streams text and prints one timing line', () => {
    const r = run('generate', '-m', dir, '-p', 'the old man', '-n', '12', '--temperature', '0', '--ignore-eos');
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.trim().length > 0);
    assert.match(r.stderr, /prompt \d+ tokens, prefill [\d.]+ tok\/s \| generated 12 tokens, decode [\d.]+ tok\/s/);
  });

  it('a seed makes sampling reproducible; GGUF and safetensors give the same greedy text', () => {
    const a = run('generate', '-m', dir, '-p', 'we', '-n', '16', '--seed', '5', '--temperature', '1', '--ignore-eos');
    const b = run('generate', '-m', dir, '-p', 'we', '-n', '16', '--seed', '5', '--temperature', '1', '--ignore-eos');
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    const gguf = join(root, 'tiny.gguf');
    const c = run('convert', dir, gguf, '--type', 'f32');
    assert.equal(c.status, 0, c.stderr);
    const g1 = run('generate', '-m', dir, '-p', 'we', '-n', '16', '--temperature', '0', '--ignore-eos');
    const g2 = run('generate', '-m', gguf, '-p', 'we', '-n', '16', '--temperature', '0', '--ignore-eos');
    assert.equal(g2.status, 0, g2.stderr);
    assert.equal(g1.stdout, g2.stdout);
  });

  it('--chat applies the chat template, --quantize q8_0 quantizes at load', () => {
    const r = run('generate', '-m', dir, '-p', 'hi', '-n', '4', '--chat', '--quantize', 'q8_0', '--ignore-eos');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /quantized q8_0/);
    const k = run('generate', '-m', dir, '-p', 'hi', '-n', '4', '--quantize', 'q4_k', '--ignore-eos');
    assert.equal(k.status, 0, k.stderr);
    assert.match(k.stderr, /quantized q4_k/);
  });

  it('bad flags: exit 2 with the flag named', () => {
    for (const [args, msg] of [
      [['-n', 'many'], /--max-tokens must be an integer/],
      [['--temperature', '-1'], /--temperature must be >= 0/],
      [['--top-p', '2'], /--top-p must be in/], // the flag's name, not the API field's
      [['--quantize', 'q3'], /--quantize supports q8_0, q4_k, got 'q3'/],
    ] as const) {
      const r = run('generate', '-m', dir, '-p', 'x', ...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
    }
  });

  it('--stop ends the text before the first occurrence of any stop string (the default model)', () => {
    const full = run('generate', '-p', 'Once upon a time', '-n', '24', '--temperature', '0');
    assert.equal(full.status, 0, full.stderr);
    const i = full.stdout.indexOf(' was');
    assert.ok(i > 0, full.stdout);
    const r = run('generate', '-p', 'Once upon a time', '-n', '24', '--temperature', '0', '--stop', 'a text it never writes', '--stop', ' was');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, full.stdout.slice(0, i) + '\n');
    assert.match(r.stderr, /\| stop \|/);
  });

  it('penalties change greedy output reproducibly; a bad value is a one-line error', () => {
    const args = ['generate', '-m', dir, '-p', 'the old man', '-n', '24', '--temperature', '0', '--ignore-eos'];
    const plain = run(...args);
    const a = run(...args, '--frequency-penalty', '2');
    const b = run(...args, '--frequency-penalty', '2');
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.notEqual(a.stdout, plain.stdout);
    assert.match(a.stderr, /generated 24 tokens/);
    for (const [flag, v, msg] of [
      ['--repetition-penalty', '0', /--repetition-penalty must be in \(0, 10\], got 0/],
      ['--presence-penalty', '3', /--presence-penalty must be in \[-2, 2\], got 3/],
      ['--frequency-penalty', 'lots', /--frequency-penalty must be a number, got 'lots'/],
      ['--stop', '', /--stop must be a non-empty string/],
    ] as const) {
      const r = run('generate', '-m', dir, '-p', 'x', flag, v);
      assert.equal(r.status, 2, `${flag} ${v}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  it('a prompt longer than the context is refused', () => {
    const r = run('generate', '-m', dir, '-p', 'word '.repeat(200));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /context is 128/);
  });
});

describe('bad model files', () => {
  const expectError = (model: string, msg: RegExp) => {
    const r = run('generate', '-m', model, '-p', 'x', '-n', '1');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  };
  const copyModel = (name: string) => {
    const d = join(root, name);
    mkdirSync(d, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) copyFileSync(join(dir, f), join(d, f));
    return d;
  };

  it('a wrong path', () => expectError(join(root, 'nope'), /nope: no such file or directory/));

  it('a config naming an unsupported architecture', () => {
    const d = copyModel('bad-arch');
    const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    c.architectures = ['FalconForCausalLM'];
    writeFileSync(join(d, 'config.json'), JSON.stringify(c));
    expectError(d, /config\.json: unsupported architecture "FalconForCausalLM"/);
  });

  it('a missing tokenizer', () => {
    const d = copyModel('no-tok');
    rmSync(join(d, 'tokenizer.json'));
    expectError(d, /tokenizer/);
  });

  it('a truncated safetensors file', () => {
    const d = copyModel('truncated');
    const f = join(d, 'model.safetensors');
    truncateSync(f, Math.floor(statSync(f).size / 2));
    expectError(d, /model\.safetensors: .*(past the end|truncated|end of)/);
  });

  it('a GGUF with a tensor type Slipstream cannot run', () => {
    const c = specToConfig(spec);
    const md = configToGgufMetadata(c, 'iq2xxs', 0);
    for (const [k, v] of randomVocabMetadata(c.vocabSize)) md.set(k, v);
    const f = join(root, 'iq2xxs.gguf');
    writeGguf(f, md, [{ name: 'token_embd.weight', type: GGML_TYPE.IQ2_XXS, dims: [256, 320], data: new Uint8Array(320 * 66) }]);
    expectError(f, /token_embd\.weight has type IQ2_XXS, which Slipstream cannot load/);
  });

  it('convert: a bad --type and a bad output name', () => {
    const r = run('convert', dir, join(root, 'x.gguf'), '--type', 'q2');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--type must be one of f32, f16, q8_0, q4_k_m, .*got 'q2'/);
    const r2 = run('convert', dir, join(root, 'x.bin'));
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /must end in \.gguf/);
  });
});

describe('generate --model hf:org/name', () => {
  it('downloads from a hub (a local mock) into the cache, then runs offline from it', async () => {
    const hub = await MockHub.start();
    try {
      hub.addRepo('slipstream/tiny', readdirSync(dir).map((f) => ({ path: f, content: readFileSync(join(dir, f)), lfs: f.endsWith('.safetensors') })));
      const cache = join(root, 'hub-cache');
      const env = { ...process.env, HF_ENDPOINT: hub.url, SLIPSTREAM_CACHE: cache, SLIPSTREAM_THREADS: '2' };
      // spawn (not spawnSync): the mock hub runs on this process's event loop
      const runAsync = (extra: Record<string, string>) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const p = spawn(process.execPath, [bin, 'generate', '-m', 'hf:slipstream/tiny', '-p', 'we', '-n', '8', '--temperature', '0', '--ignore-eos'], { env: { ...env, ...extra } });
          let stdout = '', stderr = '';
          p.stdout.on('data', (d) => (stdout += d));
          p.stderr.on('data', (d) => (stderr += d));
          p.on('close', (status) => resolve({ status, stdout, stderr }));
        });
      const first = await runAsync({});
      assert.equal(first.status, 0, first.stderr);
      const local = run('generate', '-m', dir, '-p', 'we', '-n', '8', '--temperature', '0', '--ignore-eos');
      assert.equal(first.stdout, local.stdout);
      await hub.close();
      const offline = await runAsync({ HF_HUB_OFFLINE: '1' });
      assert.equal(offline.status, 0, offline.stderr);
      assert.equal(offline.stdout, local.stdout);
    } finally {
      await hub.close().catch(() => {});
    }
  });
});
