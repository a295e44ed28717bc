// The inference model's logits at every position of one prompt (one prefill, all rows kept), and
// the llama.cpp agreement check of the quantized-model tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBatch } from '../../src/engine/batch.ts';
import { Sequence } from '../../src/engine/generate.ts';
import { loadModelSync, type LoadedModel } from '../../src/models/load.ts';
import { cpuBackend } from '../../src/tensor/cpu.ts';

/** [tokens.length, vocab] logits of `tokens` run as one sequence from position 0. */
export function inferenceLogits(lm: LoadedModel, tokens: readonly number[]): Float32Array {
  const seq = new Sequence(lm.model, { maxContext: 64, blockSize: 4 });
  const batch = makeBatch([{ tokens, startPos: 0, blockTable: seq.table, logits: 'all' }], seq.kv.blockSize);
  return lm.model.forward(batch, seq.kv).f32().slice();
}

/** The last position's logits of one prefill of `prompt` (what generation samples first). */
export function firstLogits(lm: LoadedModel, prompt: readonly number[]): Float32Array {
  const seq = new Sequence(lm.model, { maxContext: 256 });
  return Float32Array.from(seq.prefill(prompt));
}

/** log softmax in f64, for comparing log-probabilities with a peer's logits. */
export function logSoftmax(v: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < v.length; i++) mx = Math.max(mx, v[i]!);
  let s = 0;
  for (let i = 0; i < v.length; i++) s += Math.exp(v[i]! - mx);
  const ls = Math.log(s);
  return Float64Array.from(v, (x) => x - mx - ls);
}

/**
 * llama.cpp (compat/llamacpp/greedy.mjs) against Slipstream on one GGUF: the same first greedy
 * token, and the top-10 log-probabilities (of the tokens llama.cpp reports: a null is a
 * probability below FLT_MIN) within `tol`. Prints the worst difference.
 */
export function assertLlamacppParity(gguf: string, prompt: readonly number[], label: string, tol = 0.25): void {
  const compat = join(import.meta.dirname, '..', '..', 'compat', 'llamacpp');
  const req = gguf + '.request.json';
  writeFileSync(req, JSON.stringify({ model: gguf, prompts: [prompt], nPredict: 1, threads: 2, contextSize: 64 }));
  const run = spawnSync(process.execPath, [join(compat, 'greedy.mjs'), req], { encoding: 'utf8', cwd: compat, maxBuffer: 64 << 20 });
  assert.equal(run.status, 0, `llama.cpp failed: ${run.stderr}`);
  const peer = JSON.parse(run.stdout) as { outputs: number[][]; logits: (number | null)[][] };
  const ours = firstLogits(loadModelSync(gguf, cpuBackend()), prompt);
  let best = 0;
  for (let i = 1; i < ours.length; i++) if (ours[i]! > ours[best]!) best = i;
  assert.equal(best, peer.outputs[0]![0], 'first greedy token');
  const theirs = logSoftmax(peer.logits[0]!.map((v) => v ?? -1e30));
  const mine = logSoftmax(ours);
  const top = [...theirs.keys()].filter((i) => peer.logits[0]![i] != null).sort((i, j) => theirs[j]! - theirs[i]!).slice(0, 10);
  assert.ok(top.length >= 1);
  let worst = 0;
  for (const i of top) worst = Math.max(worst, Math.abs(mine[i]! - theirs[i]!));
  assert.ok(worst <= tol, `top-10 log-probabilities differ by up to ${worst}`);
  console.log(`# llama.cpp ${label} parity: top-10 log-prob max |diff| = ${worst.toExponential(2)}`);
}
