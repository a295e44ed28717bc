// `slipstream train`, `finetune` and `train-tokenizer` as a user runs them: a run killed with
// SIGKILL mid-training resumes from its last checkpoint on the same loss curve; LoRA fine-tuning
// on chat JSONL writes a PEFT adapter that `generate --lora` loads; bad input is one clear line.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateCorpus } from '../recipes/default-model/corpus.ts';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
const env = { ...process.env, SLIPSTREAM_THREADS: '2' };
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });

let root: string, corpus: string, tokDir: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-train-cli-'));
  corpus = join(root, 'stories.jsonl');
  writeFileSync(corpus, generateCorpus({ stories: 120, seed: 3 }).map((s) => JSON.stringify({ text: s })).join('\n') + '\n');
  tokDir = join(root, 'tok');
  const r = run('train-tokenizer', '-d', corpus, '-o', tokDir, '--vocab-size', '512');
  assert.equal(r.status, 0, r.stderr);
});
after(() => rmSync(root, { recursive: true, force: true }));

function writeConfig(name: string, train: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): string {
  const file = join(root, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      model: { hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, maxPosition: 64 },
      tokenizer: tokDir,
      data: { train: [corpus], seqLen: 64, evalFraction: 0.05, ...(extra.data as object) },
      train: { steps: 30, batchSize: 4, lr: 3e-3, warmup: 3, seed: 1, checkpointEvery: 5, evalBatches: 1, ...train },
      out: `runs/${name}`,
    }),
  );
  return file;
}

const losses = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);

describe('slipstream train', () => {
  it('kill -9 mid-run, rerun: resumes from the last checkpoint on the same loss curve', { timeout: 120_000 }, async () => {
    const full = writeConfig('full');
    const a = run('train', '-c', full, '--plot', join(root, 'loss.png'));
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stderr, /done, loss [\d.]+, eval loss [\d.]+ \(perplexity/);
    assert.ok(readFileSync(join(root, 'loss.png')).subarray(1, 4).toString() === 'PNG');
    const want = losses(join(root, 'runs/full'));
    assert.equal(want.length, 30);

    const cut = writeConfig('cut');
    const out = join(root, 'runs/cut');
    const child = spawn(process.execPath, [bin, 'train', '-c', cut], { env, stdio: 'ignore' });
    // kill it once a checkpoint past the first exists (mid-run, at an arbitrary instant)
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (existsSync(join(out, 'metrics.jsonl')) && losses(out).length >= 12) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(t);
        reject(new Error('the run finished before it could be killed'));
      });
    });
    await new Promise((r) => child.on('exit', r));
    const b = run('train', '-c', cut);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, /resuming from .*step-0+(5|10|15|20|25)\b/);
    assert.deepEqual(losses(out), want);
  });

  it('bad config: unknown key, impossible value, missing file, empty corpus, bad JSONL', () => {
    const cases: [string, RegExp][] = [
      [writeConfig('unknown', { lr_max: 1 }), /train\.lr_max/],
      [writeConfig('neg', { lr: -1 }), /train\.lr/],
      [writeConfig('nofile', {}, { data: { train: ['nope.jsonl'] } }), /nope\.jsonl/],
    ];
    writeFileSync(join(root, 'empty.jsonl'), '');
    cases.push([writeConfig('empty', {}, { data: { train: [join(root, 'empty.jsonl')] } }), /empty\.jsonl.*(empty|no (text|documents))/i]);
    writeFileSync(join(root, 'bad.jsonl'), '{"text": "fine"}\n{"text": oops}\n');
    cases.push([writeConfig('badjson', {}, { data: { train: [join(root, 'bad.jsonl')] } }), /bad\.jsonl.*line 2/]);
    writeFileSync(join(root, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    cases.push([writeConfig('latin1', {}, { data: { train: [join(root, 'latin1.txt')], format: 'text' } }), /latin1\.txt.*UTF-8/i]);
    for (const [file, re] of cases) {
      const r = run('train', '-c', file);
      assert.equal(r.status, 1, `${file}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('slipstream: error:')).length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });

  it('a checkpoint from a different model is refused, naming the tensor', () => {
    const a = writeConfig('shape', { steps: 5 });
    assert.equal(run('train', '-c', a).status, 0);
    const cfg = JSON.parse(readFileSync(a, 'utf8'));
    cfg.model.intermediateSize = 96;
    cfg.train.steps = 10;
    writeFileSync(a, JSON.stringify(cfg));
    const r = run('train', '-c', a);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /different model: tensor model\.layers\.0\.mlp\.\w+_proj\.weight/);
  });
});

describe('slipstream finetune (LoRA)', () => {
  it('trains an adapter on chat JSONL; generate --lora loads it; a target the model lacks is refused', { timeout: 120_000 }, () => {
    const base = join(root, 'base');
    writeRandomHfModel(base, TINY_SPECS.llama, 4);
    const tc = JSON.parse(readFileSync(join(base, 'tokenizer_config.json'), 'utf8'));
    tc.chat_template = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
    writeFileSync(join(base, 'tokenizer_config.json'), JSON.stringify(tc));
    const chat = join(root, 'chat.jsonl');
    const lines = [];
    for (let i = 0; i < 40; i++) lines.push(JSON.stringify({ messages: [{ role: 'user', content: `the ${i % 7} of` }, { role: 'assistant', content: 'and the state of it' }] }));
    writeFileSync(chat, lines.join('\n') + '\n');
    const out = join(root, 'ft');
    const r = run('finetune', '-m', base, '-d', chat, '--format', 'chat', '-o', out, '--steps', '12', '--lora-rank', '4', '--lora-targets', 'q,v,up', '--seq-len', '32', '--batch-size', '4', '--lr', '1e-2', '--quantize-base', 'q8_0');
    assert.equal(r.status, 0, r.stderr);
    const ls = losses(out);
    assert.ok(ls.at(-1)! < ls[0]! * 0.8, `LoRA loss ${ls[0]} -> ${ls.at(-1)}`);
    const ac = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8'));
    assert.deepEqual(ac.target_modules, ['q_proj', 'up_proj', 'v_proj']);
    assert.ok(existsSync(join(out, 'model', 'model.safetensors')), 'merged model');
    const g = run('generate', '-m', base, '--lora', join(out, 'adapter'), '-p', 'the 3 of', '-n', '8', '--temperature', '0');
    assert.equal(g.status, 0, g.stderr);
    const bad = run('finetune', '-m', base, '-d', chat, '--format', 'chat', '-o', join(root, 'ft2'), '--lora-rank', '4', '--lora-targets', 'q,qkv');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /qkv/);
  });
});
