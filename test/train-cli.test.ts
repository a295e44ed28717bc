// `slipstream train`, `finetune` and `train-tokenizer` as a user runs them: a run killed with
// SIGKILL mid-training resumes from its last checkpoint on the same loss curve; LoRA fine-tuning
// on chat JSONL writes a PEFT adapter that `generate --lora` loads; bad input is one clear line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateCorpus } from '../recipes/default-model/corpus.ts';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';
import { signalAfterSteps } from './helpers/train-run.ts';

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
    // kill it once a checkpoint past the first exists (mid-run, at an arbitrary instant)
    await signalAfterSteps(['train', '-c', cut], out, 12, 'SIGKILL', env);
    const b = run('train', '-c', cut);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, /resuming from .*step-0+(5|10|15|20|25)\b/);
    assert.deepEqual(losses(out), want);
  });

  it('SIGTERM mid-run: a checkpoint at the step reached, the plot, one summary line, exit 0; the rerun resumes', { timeout: 120_000 }, async () => {
    const cfg = writeConfig('term', { steps: 400, checkpointEvery: 0 });
    const out = join(root, 'runs/term');
    const { code, stderr } = await signalAfterSteps(['train', '-c', cfg], out, 3, 'SIGTERM', env);
    assert.equal(code, 0, stderr);
    const m = /stopped by SIGTERM at step (\d+)\/400, loss [\d.]+; checkpoint in .*; rerun the same command to resume/.exec(stderr);
    assert.ok(m, stderr);
    const step = Number(m[1]);
    assert.equal(losses(out).length, step, 'the log ends at the step reached');
    assert.ok(existsSync(join(out, 'checkpoints', `step-${String(step).padStart(8, '0')}`)) || readdirSync(join(out, 'checkpoints')).some((d) => new RegExp(`^step-0*${step}$`).test(d)), `a checkpoint at step ${step}: ${readdirSync(join(out, 'checkpoints'))}`);
    assert.equal(readFileSync(join(out, 'loss.png')).subarray(1, 4).toString(), 'PNG');
    assert.match(readFileSync(join(out, 'loss.svg'), 'utf8'), /<svg/);
    assert.ok(!existsSync(join(out, 'train.lock')), 'the lock is released');
    assert.doesNotMatch(stderr, /\n\s+at /);
    // the rerun (fewer steps now, to keep the test short) resumes from that checkpoint
    const cfg2 = JSON.parse(readFileSync(cfg, 'utf8'));
    cfg2.train.steps = step + 2;
    writeFileSync(cfg, JSON.stringify(cfg2));
    const b = run('train', '-c', cfg);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, new RegExp(`resuming from .*step-0*${step}\\b`));
    assert.equal(losses(out).length, step + 2);
  });

  it('a second run into the same folder is refused while the first runs; a stale lock is taken over', { timeout: 60_000 }, () => {
    const cfg = writeConfig('lock', { steps: 2, warmup: 0 });
    const out = join(root, 'runs/lock');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'train.lock'), `${process.pid}\n`); // this test process: alive
    const r = run('train', '-c', cfg);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^slipstream: error: .*runs/lock is in use by another training run \\(PID ${process.pid}`, 'm'));
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(out, 'train.lock'), `${dead}\n`);
    const ok = run('train', '-c', cfg);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, new RegExp(`taking over .*train\\.lock: the run that held it \\(PID ${dead}\\) is no longer running`));
  });

  it('a config with a prepare step builds its missing inputs first (the recipe as one command)', { timeout: 60_000 }, () => {
    const dir = join(root, 'recipe');
    mkdirSync(dir, { recursive: true });
    const stages = join(import.meta.dirname, '..', 'recipes', 'default-model', 'stages.ts');
    // the recipe's own stages at a tiny size
    writeFileSync(join(dir, 'prep.mts'), `import { prepare as p } from ${JSON.stringify(stages)};\nexport const prepare = (o: { log: (m: string) => void }) => p({ corpus: ${JSON.stringify(join(dir, 'out/corpus.jsonl'))}, tokenizer: ${JSON.stringify(join(dir, 'out/tok'))}, stories: 40, seed: 1, vocabSize: 300, log: o.log });\n`);
    writeFileSync(join(dir, 'train.json'), JSON.stringify({
      prepare: 'prep.mts',
      model: { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, maxPosition: 32 },
      tokenizer: 'out/tok',
      data: { train: ['out/corpus.jsonl'], seqLen: 32 },
      train: { steps: 2, batchSize: 2, warmup: 0 },
      out: 'out/run',
    }));
    const a = run('train', '-c', join(dir, 'train.json'));
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stderr, /2 input\(s\) missing .*: building them with .*prep\.mts/);
    assert.match(a.stderr, /corpus: 40 stories/);
    assert.match(a.stderr, /tokenizer: 300 tokens/);
    assert.ok(existsSync(join(dir, 'out/run/model/model.safetensors')));
    const b = run('train', '-c', join(dir, 'train.json'));
    assert.equal(b.status, 0, b.stderr);
    assert.doesNotMatch(b.stderr, /missing/);
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

describe('slipstream finetune', () => {
  it('defaults to the embedded model; --eval-fraction 0 trains on all of a tiny dataset; a big share warns', { timeout: 120_000 }, () => {
    const txt = join(root, 'tiny.txt');
    writeFileSync(txt, 'Once upon a time there was a little fox who liked to read.\n');
    const a = run('finetune', '-d', txt, '-o', join(root, 'ft-default'), '--steps', '1', '--seq-len', '8', '--batch-size', '1', '--lora-rank', '2');
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stderr, /warning: the held-out split takes \d+ of \d+ sequences \(\d+%, asked for 1%\)/);
    const ac = JSON.parse(readFileSync(join(root, 'ft-default', 'adapter', 'adapter_config.json'), 'utf8'));
    assert.match(ac.base_model_name_or_path, /models[\\/]default$/);
    const b = run('finetune', '-d', txt, '-o', join(root, 'ft-all'), '--steps', '1', '--seq-len', '8', '--batch-size', '1', '--lora-rank', '2', '--eval-fraction', '0');
    assert.equal(b.status, 0, b.stderr);
    assert.doesNotMatch(b.stderr, /warning/);
    assert.match(b.stderr, / 0 eval sequences/);
    const bad = run('finetune', '-d', txt, '-o', join(root, 'ft-bad'), '--eval-fraction', '1');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /data\.evalFraction must be < 1/);
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
