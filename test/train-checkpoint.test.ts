// Training checkpoints: round trip, retention, "made for a different model" errors, corrupt
// files, and crash safety (leftover temp dirs, half-written files, a kill -9 mid-save).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FormatError } from '../src/formats/errors.ts';
import { openSafetensorsCheckpoint } from '../src/formats/safetensors.ts';
import { CheckpointMismatchError, latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint, type Params } from '../src/train/checkpoint.ts';

let dir = '';
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-train-ck-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
const fresh = () => join(dir, `run${n++}`);
// Beyond any pid_max, so never a live process.
const DEAD_PID = 99_999_999;

function params(shapes: Record<string, number[]>, fill: number): Params {
  const p: Params = new Map();
  for (const [name, shape] of Object.entries(shapes)) {
    const size = shape.reduce((a, b) => a * b, 1);
    p.set(name, { shape, data: Float32Array.from({ length: size }, (_, i) => fill + i / 1000) });
  }
  return p;
}
const SHAPES = { 'model.embed_tokens.weight': [10, 4], 'model.layers.0.mlp.up_proj.weight': [6, 4], 'model.norm.weight': [4] };
const HF = { architectures: ['LlamaForCausalLM'], hidden_size: 4 };

function save(out: string, step: number, extra: { keep?: number; tokenizerDir?: string } = {}): string {
  return saveCheckpoint(out, {
    step,
    params: params(SHAPES, step),
    opt: { m: params(SHAPES, -step), v: params(SHAPES, step * 2) },
    hfConfig: HF,
    state: { rng: [1, 2, 3], data: { epoch: 0, index: step, seed: 0 }, configHash: 'abc' },
    ...extra,
  });
}

describe('checkpoints', () => {
  it('round-trips weights, optimizer moments, state, config and tokenizer files', () => {
    const out = fresh();
    const tokDir = join(out, 'tok');
    mkdirSync(tokDir, { recursive: true });
    writeFileSync(join(tokDir, 'tokenizer.json'), '{"model":{}}');
    writeFileSync(join(tokDir, 'tokenizer_config.json'), '{}');
    const ck = save(out, 100, { tokenizerDir: tokDir });
    assert.equal(ck, join(out, 'checkpoints', 'step-00000100'));
    assert.deepEqual(readdirSync(ck).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'state.json', 'tokenizer.json', 'tokenizer_config.json']);
    assert.equal(readFileSync(join(out, 'checkpoints', 'latest'), 'utf8'), 'step-00000100\n');
    assert.equal(latestCheckpoint(out), ck);
    // model.safetensors is a plain HF file: readable by the generic reader, format "pt".
    const st = openSafetensorsCheckpoint(ck);
    assert.equal(st.metadata.format, 'pt');
    assert.deepEqual(st.info('model.layers.0.mlp.up_proj.weight').shape, [6, 4]);

    const l = loadCheckpoint(ck, params(SHAPES, 0));
    assert.equal(l.step, 100);
    assert.deepEqual(l.params, params(SHAPES, 100));
    assert.deepEqual(l.opt, { m: params(SHAPES, -100), v: params(SHAPES, 200) });
    assert.deepEqual(l.state, { rng: [1, 2, 3], data: { epoch: 0, index: 100, seed: 0 }, configHash: 'abc', step: 100 });
    assert.deepEqual(l.hfConfig, HF);
    // Without optimizer state.
    const out2 = fresh();
    saveCheckpoint(out2, { step: 1, params: params(SHAPES, 1), hfConfig: HF, state: {} });
    assert.equal(loadCheckpoint(latestCheckpoint(out2)!).opt, null);
    assert.equal(latestCheckpoint(fresh()), null);
  });

  it('keeps the last K checkpoints; re-saving a step replaces it', () => {
    const out = fresh();
    for (const s of [1, 2, 3, 4, 5]) save(out, s, { keep: 2 });
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [4, 5]);
    assert.deepEqual(readdirSync(join(out, 'checkpoints')).sort(), ['latest', 'step-00000004', 'step-00000005']);
    save(out, 5, { keep: 2 });
    assert.deepEqual(readdirSync(join(out, 'checkpoints')).sort(), ['latest', 'step-00000004', 'step-00000005']);
    // The one just written is kept even when older steps have higher numbers (a restarted run).
    save(out, 2, { keep: 2 });
    assert.equal(latestCheckpoint(out), join(out, 'checkpoints', 'step-00000002'));
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [2, 5]);
  });

  it('refuses a checkpoint made for a different model, naming the first differing tensor', () => {
    const out = fresh();
    const ck = save(out, 7);
    const other = params({ ...SHAPES, 'model.layers.0.mlp.up_proj.weight': [96, 32] }, 0);
    assert.throws(
      () => loadCheckpoint(ck, other),
      (e: unknown) => e instanceof CheckpointMismatchError && e.message === `checkpoint ${ck} was made for a different model: tensor model.layers.0.mlp.up_proj.weight is [6, 4], this model's is [96, 32]`,
    );
    const more = params({ ...SHAPES, 'lm_head.weight': [10, 4] }, 0);
    assert.throws(() => loadCheckpoint(ck, more), (e: unknown) => e instanceof CheckpointMismatchError && /: tensor lm_head\.weight is not in it$/.test(e.message));
    const fewer = params({ 'model.embed_tokens.weight': [10, 4], 'model.norm.weight': [4] }, 0);
    assert.throws(() => loadCheckpoint(ck, fewer), (e: unknown) => e instanceof CheckpointMismatchError && /: tensor model\.layers\.0\.mlp\.up_proj\.weight is not in this model$/.test(e.message));
  });

  it('names the file of a truncated or corrupt checkpoint', () => {
    const out = fresh();
    const ck = save(out, 3);
    const copy = (name: string) => {
      const d = join(out, name);
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d);
      for (const f of readdirSync(ck)) writeFileSync(join(d, f), readFileSync(join(ck, f)));
      return d;
    };
    const a = copy('truncated');
    truncateSync(join(a, 'model.safetensors'), statSync(join(a, 'model.safetensors')).size - 10);
    assert.throws(() => loadCheckpoint(a), (e: unknown) => e instanceof FormatError && e.message.startsWith(join(a, 'model.safetensors') + ': ') && /past the end/.test(e.message));
    const b = copy('badopt');
    writeFileSync(join(b, 'optimizer.safetensors'), Buffer.from([1, 2, 3]));
    assert.throws(() => loadCheckpoint(b), (e: unknown) => e instanceof FormatError && e.message.startsWith(join(b, 'optimizer.safetensors') + ': '));
    const c = copy('badstate');
    writeFileSync(join(c, 'state.json'), '{"step": 3, "rng": [1, ');
    assert.throws(() => loadCheckpoint(c), (e: unknown) => e instanceof FormatError && e.message.startsWith(join(c, 'state.json') + ': is truncated or corrupt'));
    const d = copy('noconfig');
    rmSync(join(d, 'config.json'));
    assert.throws(() => loadCheckpoint(d), (e: unknown) => e instanceof FormatError && e.message === `${join(d, 'config.json')}: missing from the checkpoint`);
    assert.throws(() => loadCheckpoint(join(out, 'nope')), (e: unknown) => e instanceof FormatError && /nope: is not a checkpoint directory/.test(e.message));
  });

  it('survives a crash mid-save: leftovers are ignored by readers and cleaned by the next save', () => {
    const out = fresh();
    const good = save(out, 10);
    const ckDir = join(out, 'checkpoints');
    // A save of step 20 killed halfway: a temp dir with a half-written weights file, a temp
    // latest, and a torn temp file from the safetensors writer.
    const tmp = join(ckDir, `step-00000020.tmp-${DEAD_PID}`);
    mkdirSync(tmp);
    const whole = readFileSync(join(good, 'model.safetensors'));
    writeFileSync(join(tmp, 'model.safetensors'), whole.subarray(0, whole.length >> 1));
    writeFileSync(join(ckDir, `latest.tmp-${DEAD_PID}`), 'step-000');
    assert.equal(latestCheckpoint(out), good);
    assert.equal(loadCheckpoint(latestCheckpoint(out)!, params(SHAPES, 0)).step, 10);
    // A directory named like a checkpoint but without state.json (never complete) is ignored too,
    // and so is a `latest` naming a directory that is gone.
    mkdirSync(join(ckDir, 'step-00000030'));
    writeFileSync(join(ckDir, 'step-00000030', 'model.safetensors'), 'x');
    writeFileSync(join(ckDir, 'latest'), 'step-00000040\n');
    assert.equal(latestCheckpoint(out), good);
    // A live process's temp dir is left alone; a dead one's goes.
    const live = join(ckDir, `step-00000020.tmp-${process.ppid}`);
    mkdirSync(live);
    save(out, 20);
    assert.ok(!existsSync(tmp));
    assert.ok(!existsSync(join(ckDir, `latest.tmp-${DEAD_PID}`)));
    assert.ok(existsSync(live));
    assert.equal(latestCheckpoint(out), join(ckDir, 'step-00000020'));
  });

  it('a re-save of the same step killed between its renames still leaves that step loadable', () => {
    const out = fresh();
    save(out, 9);
    const ck = save(out, 10);
    const ckDir = join(out, 'checkpoints');
    // The state right after "move the old step-10 aside", before the new one is renamed in.
    const aside = join(ckDir, `step-00000010.aside.tmp-${DEAD_PID}`);
    renameSync(ck, aside);
    mkdirSync(join(ckDir, `step-00000010.tmp-${DEAD_PID}`));
    assert.equal(latestCheckpoint(out), aside);
    assert.equal(loadCheckpoint(aside).step, 10);
    save(out, 11); // the aside copy is still the only step 10: kept
    assert.ok(existsSync(aside));
    save(out, 10);
    save(out, 12);
    assert.ok(!existsSync(aside));
    assert.deepEqual(readdirSync(ckDir).sort(), ['latest', 'step-00000010', 'step-00000011', 'step-00000012']);
  });

  it('a kill -9 at a random instant of a save loop always leaves a loadable latest checkpoint', async () => {
    const out = fresh();
    const script = join(dir, 'saver.ts');
    const ckModule = resolve('src/train/checkpoint.ts');
    // Saves steps from argv[3] on, forever; params hold the step so a torn mix would show.
    writeFileSync(
      script,
      `import { saveCheckpoint } from ${JSON.stringify(ckModule)};
const out = process.argv[2]!;
const big = (v: number) => new Map([['w', { shape: [256, 1024], data: new Float32Array(256 * 1024).fill(v) }], ['b', { shape: [1024], data: new Float32Array(1024).fill(v) }]]);
for (let s = Number(process.argv[3]); ; s++) {
  saveCheckpoint(out, { step: s, params: big(s), opt: { m: big(-s), v: big(s) }, hfConfig: {}, state: { s }, keep: 2 });
  process.stdout.write('saved ' + s + '\\n');
}
`,
    );
    const expect: Params = new Map([['w', { shape: [256, 1024], data: new Float32Array(0) }], ['b', { shape: [1024], data: new Float32Array(0) }]]);
    let next = 1;
    for (let round = 0; round < 2; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', script, out, String(next)], { stdio: ['ignore', 'pipe', 'inherit'] });
      // Wait for one completed save, then kill at a random moment within the next saves.
      await new Promise<void>((res, rej) => {
        child.stdout!.once('data', () => res());
        child.once('exit', (code) => rej(new Error(`saver exited with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 100));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const latest = latestCheckpoint(out);
      assert.ok(latest, 'no checkpoint after the kill');
      const l = loadCheckpoint(latest, expect);
      assert.deepEqual(l.state, { s: l.step, step: l.step });
      for (const t of [...l.params.values(), ...l.opt!.v.values()]) assert.ok(t.data.every((x) => x === l.step));
      assert.ok(l.opt!.m.get('w')!.data.every((x) => x === -l.step));
      assert.ok(l.step >= next);
      next = l.step + 1;
    }
  });
});
