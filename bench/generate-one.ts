// One Slipstream generation measurement in a fresh process (so load time and resident memory are
// this model's alone): load a GGUF, prefill a prompt of random ids (256-token chunks), decode greedily.
// Prints one line of JSON. Driven by bench/generate.ts.
//   node --import tsx bench/generate-one.ts MODEL [THREADS=2] [PROMPT=512] [DECODE=128] [KV_DTYPE=f32]

import { Sequence } from '../src/engine/generate.ts';
import { argmax } from '../src/engine/sampler.ts';
import { isKvDtype, KvPool } from '../src/models/kv.ts';
import { loadModelSync } from '../src/models/load.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const [model, threadsS, promptS, decodeS, kvS] = process.argv.slice(2);
const threads = Number(threadsS ?? 2), promptLen = Number(promptS ?? 512), decodeLen = Number(decodeS ?? 128);
const kvDtype = kvS ?? 'f32';
if (!isKvDtype(kvDtype)) throw new Error(`KV dtype must be f32, f16 or q8_0, got ${kvDtype}`);
const be = cpuBackend();
be.setThreads(threads);

const t0 = performance.now();
const lm = loadModelSync(model!, be);
const loadSeconds = (performance.now() - t0) / 1000;

// Fixed pseudo-random prompt ids (skipping the first 3 special tokens).
let s = 12345;
const prompt = Array.from({ length: promptLen }, () => 3 + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (lm.config.vocabSize - 3)));

// Warm-up: touch every weight once and let the pool spin up (its first forward also prepacks
// the q4_k matrices on AVX2: timed apart, as firstForwardSeconds).
const tw = performance.now();
let firstForwardSeconds = 0;
{
  const w = new Sequence(lm.model, { maxContext: 32, kvDtype });
  let l = w.prefill(prompt.slice(0, 8));
  firstForwardSeconds = (performance.now() - tw) / 1000;
  for (let i = 0; i < 4; i++) l = w.decode(argmax(l));
}

const seq = new Sequence(lm.model, { maxContext: promptLen + decodeLen, kvDtype });
const t1 = performance.now();
let logits = seq.prefill(prompt);
const t2 = performance.now();
for (let i = 0; i < decodeLen; i++) logits = seq.decode(argmax(logits));
const t3 = performance.now();

const mem = process.memoryUsage();
console.log(JSON.stringify({
  loadSeconds,
  firstForwardSeconds,
  promptTokens: promptLen,
  prefillTokPerSec: promptLen / ((t2 - t1) / 1000),
  decodeTokens: decodeLen,
  decodeTokPerSec: decodeLen / ((t3 - t2) / 1000),
  weightBytes: lm.weightBytes,
  kvDtype,
  kvBytes: seq.kv.nBlocks * seq.kv.blockSize * KvPool.bytesPerToken(lm.config, seq.kv.dtype),
  rssBytes: mem.rss,
  threads: be.threads,
  isa: be.isa,
}));
