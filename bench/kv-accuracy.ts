// What a q8_0 (or f16) KV cache costs in accuracy: the default model (models/default, or -m)
// scores a fixed text with each KV cache dtype, and every position's logits are compared with
// those of an f32 cache. Prints perplexity per dtype and, against f32: mean and max |Δlogit|, mean
// and max |Δlogprob| of the text's next token, mean KL(f32 || dtype), and how often the argmax
// (the greedy token) agrees.
//
//   node --import tsx bench/kv-accuracy.ts [-m MODEL] [--tokens 4096] [--chunk 128] [--seed 7]
//
// The text: stories from the default model's corpus generator with a seed other than training's
// (recipes/default-model), cut into windows of the model's context; each window is prefilled in
// chunks of --chunk tokens, so later chunks read the earlier ones' keys and values back from the
// cache (in its dtype), as serving does.

import { generateCorpus } from '../recipes/default-model/corpus.ts';
import { makeBatch } from '../src/engine/batch.ts';
import { defaultModelDir } from '../src/models/default.ts';
import { KvPool, type KvDType } from '../src/models/kv.ts';
import { loadModelSync } from '../src/models/load.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.findIndex((a) => a === `--${name}` || (name === 'model' && a === '-m'));
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const modelPath = opt('model', defaultModelDir());
const nTokens = Number(opt('tokens', '4096'));
const chunk = Number(opt('chunk', '128'));
const seed = Number(opt('seed', '7'));

const lm = loadModelSync(modelPath, cpuBackend());
const V = lm.config.vocabSize;
const ctx = Math.min(lm.config.maxPosition, 512);

// the text: whole stories until nTokens
const ids: number[] = [];
for (const story of generateCorpus({ stories: 400, seed })) {
  ids.push(...lm.tokenizer.encode(story, { addSpecialTokens: true }));
  if (ids.length >= nTokens) break;
}
ids.length = Math.min(ids.length, nTokens);

/** log-softmax of a row, in float64. */
function logSoftmax(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

/** Logits of every position of every window (windows of ctx tokens, prefilled chunk by chunk). */
function score(dtype: KvDType): Float32Array[] {
  const rows: Float32Array[] = [];
  const bs = 16;
  const nBlocks = Math.ceil(ctx / bs);
  const kv = new KvPool(lm.config, nBlocks, bs, dtype);
  const table = Int32Array.from({ length: nBlocks }, (_, i) => i);
  for (let w = 0; w + 1 < ids.length; w += ctx) {
    const win = ids.slice(w, w + ctx);
    for (let c = 0; c < win.length; c += chunk) {
      const tokens = win.slice(c, c + chunk);
      const out = lm.model.forward(makeBatch([{ tokens, startPos: c, blockTable: table, logits: 'all' }], bs), kv).f32();
      for (let i = 0; i < tokens.length; i++) rows.push(out.slice(i * V, (i + 1) * V));
    }
  }
  return rows;
}

/** Targets: the next token of each position inside its window (the window's last position has none). */
const targets: number[] = [];
for (let w = 0; w + 1 < ids.length; w += ctx) {
  const win = ids.slice(w, w + ctx);
  for (let i = 0; i < win.length; i++) targets.push(i + 1 < win.length ? win[i + 1]! : -1);
}

const t0 = performance.now();
const base = score('f32');
console.log(`# kv-accuracy: ${modelPath} (${lm.config.nLayers} layers, ${lm.config.nKvHeads} KV heads x ${lm.config.headDim}), ${ids.length} tokens in windows of ${ctx}, prefill chunks of ${chunk}; isa ${cpuBackend().isa}`);
const baseLp = base.map(logSoftmax);
const ppl = (lps: Float64Array[]) => {
  let nll = 0, n = 0;
  lps.forEach((lp, i) => {
    if (targets[i]! >= 0) (nll -= lp[targets[i]!]!, n++);
  });
  return Math.exp(nll / n);
};
console.log(`f32 KV: perplexity ${ppl(baseLp).toFixed(5)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
for (const dtype of ['f16', 'q8_0'] as const) {
  const rows = score(dtype);
  const lps = rows.map(logSoftmax);
  let dl = 0, dlMax = 0, dp = 0, dpMax = 0, kl = 0, agree = 0, n = 0, nt = 0;
  rows.forEach((r, i) => {
    const b = base[i]!, lb = baseLp[i]!, lq = lps[i]!;
    let am = 0, bm = 0;
    for (let j = 0; j < V; j++) {
      const d = Math.abs(r[j]! - b[j]!);
      dl += d;
      dlMax = Math.max(dlMax, d);
      kl += Math.exp(lb[j]!) * (lb[j]! - lq[j]!);
      if (r[j]! > r[am]!) am = j;
      if (b[j]! > b[bm]!) bm = j;
    }
    if (am === bm) agree++;
    n++;
    if (targets[i]! >= 0) {
      const d = Math.abs(lq[targets[i]!]! - lb[targets[i]!]!);
      dp += d;
      dpMax = Math.max(dpMax, d);
      nt++;
    }
  });
  console.log(
    `${dtype} KV (${(KvPool.bytesPerToken(lm.config, dtype) / KvPool.bytesPerToken(lm.config, 'f16')).toFixed(3)}x the bytes of f16): perplexity ${ppl(lps).toFixed(5)}` +
      ` | vs f32: mean |Δlogit| ${(dl / (n * V)).toExponential(2)}, max ${dlMax.toExponential(2)}; next-token |Δlogprob| mean ${(dp / nt).toExponential(2)}, max ${dpMax.toExponential(2)};` +
      ` mean KL ${(kl / n).toExponential(2)} nats; argmax agrees at ${agree}/${n} positions (${((100 * agree) / n).toFixed(2)}%)`,
  );
}
