// Every family against llama.cpp, an implementation nobody here wrote: a tiny random Hugging Face
// checkpoint is exported with `slipstream convert` (f32 GGUF, llama.cpp's names, metadata and
// RoPE permutation), llama.cpp (node-llama-cpp 3.21.1, compat/llamacpp/) decodes it greedily,
// and Slipstream — loading the original Hugging Face directory, not the GGUF — must produce the
// same 64 tokens and the same first-step logits.
//
// compat/llamacpp is installed by .ci/run (`npm ci --prefix compat/llamacpp`); on a machine
// without it the test is skipped with a message, except under CI where that is a failure.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sequence } from '../src/engine/generate.ts';
import { argmax } from '../src/engine/sampler.ts';
import { longRopeAttnFactor, type Arch } from '../src/formats/model-config.ts';
import { hfToGguf } from '../src/models/convert.ts';
import { loadModelSync } from '../src/models/load.ts';
import { TINY_SPECS, writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const compat = join(import.meta.dirname, '..', 'compat', 'llamacpp');
const installed = existsSync(join(compat, 'node_modules', 'node-llama-cpp'));
if (!installed && process.env.CI) throw new Error('compat/llamacpp is not installed: run `npm ci --prefix compat/llamacpp`');
const skip = installed ? false : 'llama.cpp peer not installed (npm ci --prefix compat/llamacpp)';

// Small but not trivial shapes; windows chosen so generation runs past them where llama.cpp
// implements the window (Gemma 2), and stays inside it where llama.cpp's graph ignores it
// (Mistral is "llama" in GGUF). No model-level test covers Mistral's window past its end; the
// window itself is tested in the attention kernels: ref.test.ts ('sliding window hides keys
// with p - j >= window') and ops.test.ts (the cpu kernels against ref, with windows).
const SPECS: Record<string, RandomModelSpec> = Object.fromEntries(
  (Object.keys(TINY_SPECS) as Arch[]).map((a) => [a, { ...TINY_SPECS[a], vocabSize: 384 }]),
);
SPECS.llama = { ...SPECS.llama!, dim: 96, nHeads: 6, ffnDim: 160 };
SPECS.mistral = { ...SPECS.mistral!, slidingWindow: 128 };
SPECS.gemma2 = { ...SPECS.gemma2!, slidingWindow: 24 };
// Gemma 3: layers 0-4 windowed (local RoPE base 10000), layer 5 global (base 1e6, linear scaling as the 4B+ models)
SPECS.gemma3 = { ...SPECS.gemma3!, slidingWindow: 24, ropeScaling: { type: 'linear', factor: 8 } };
SPECS.gpt2 = { ...SPECS.gpt2!, maxPosition: 128 };
// Llama 3.2: tied embeddings (no lm_head, llama.cpp uses token_embd as the output), base 500000, llama3 scaling
SPECS['llama3.2'] = {
  ...SPECS.llama!, tie: true, ropeTheta: 500000,
  ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 },
};
// SmolLM2: the llama architecture, tied, base 100000, 3 query heads sharing one KV head
SPECS.smollm2 = { ...SPECS.llama!, dim: 96, nHeads: 3, nKvHeads: 1, ffnDim: 128, tie: true, ropeTheta: 100000 };
// Mistral Nemo: head_dim 32 with dim 64 and 4 heads (q is 128 wide, not 64), no window
// Phi-4-mini: Phi-3's fused projections with 3/4 of each head rotated, tied embeddings (llama.cpp's phi3
// graph assumes heads * head_dim = dim, as every released Phi has)
SPECS['phi4-mini'] = { ...SPECS.phi3!, rotaryDim: 12, tie: true };
// Phi-3.5-mini's LongRoPE, short factors: llama.cpp picks one factor list per context (the long one
// when the context exceeds the original), Slipstream (as Hugging Face) by position, so the original
// context here is the peer's whole context (256; llama.cpp rounds contexts up to 256) and every
// position is below it. The attention factor is what a model extended to 512 positions would have.
const SHORT = [1, 1.05, 1.2, 1.5, 2, 2.5, 3.5, 5];
const LONG = [1, 1.5, 2.5, 4, 7, 11, 18, 30];
SPECS['phi3.5-longrope-short'] = { ...SPECS.phi3!, ropeScaling: { type: 'longrope', shortFactor: SHORT, longFactor: LONG, originalMaxPosition: 256, attnFactor: longRopeAttnFactor(512, 256) } };
// ... and the long factors: with an original context of 1, every position but 0 (where the rotation
// is the identity whatever the factors) is past it here, and llama.cpp uses the long list throughout
SPECS['phi3.5-longrope-long'] = { ...SPECS.phi3!, ropeScaling: { type: 'longrope', shortFactor: SHORT, longFactor: LONG, originalMaxPosition: 1, attnFactor: 1.1 } };
SPECS['mistral-nemo'] = { ...SPECS.mistral!, nKvHeads: 2, headDim: 32, slidingWindow: 0, ropeTheta: 1e6 };

const PROMPTS = [
  [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17],
  [1, 3, 99],
];
const N_PREDICT = 64;

interface LlamaCppResult {
  outputs: number[][];
  logits: (number | null)[][];
}

function runLlamaCpp(model: string): LlamaCppResult {
  const req = join(model + '.request.json');
  writeFileSync(req, JSON.stringify({ model, prompts: PROMPTS, nPredict: N_PREDICT, threads: 2, contextSize: 256 }));
  const r = spawnSync(process.execPath, [join(compat, 'greedy.mjs'), req], { encoding: 'utf8', cwd: compat, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `llama.cpp failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as LlamaCppResult;
}

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-llamacpp-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('agreement with llama.cpp (greedy, f32)', { skip }, () => {
  for (const arch of Object.keys(SPECS)) {
    it(`${arch}: same 64 greedy tokens and first-step logits`, () => {
      // The directory's name becomes general.name; llama.cpp's vocabulary loader special-cases
      // names with "phi3" in them (it looks up Phi-3's chat tokens, which a random vocabulary lacks).
      const dir = join(root, `tiny-${arch.replace('phi3', 'phi')}`);
      writeRandomHfModel(dir, SPECS[arch]!, 21);
      const gguf = join(root, `${arch}.gguf`);
      hfToGguf(dir, gguf, { type: 'f32' });
      const peer = runLlamaCpp(gguf);

      const lm = loadModelSync(dir, cpuBackend());
      PROMPTS.forEach((prompt, p) => {
        const seq = new Sequence(lm.model, { maxContext: 256 });
        let logits = seq.prefill(prompt);
        // First-step logits, relative to their maximum (what the peer reports).
        let mx = -Infinity;
        for (const v of logits) mx = Math.max(mx, v);
        const theirs = peer.logits[p]!;
        let scale = 0, diff = 0;
        for (let i = 0; i < theirs.length; i++) {
          const t = theirs[i];
          if (t === null || t === undefined || t < -60) continue; // below float32 probability range
          scale = Math.max(scale, Math.abs(t));
          diff = Math.max(diff, Math.abs(logits[i]! - mx - t));
        }
        // ggml's CPU GELU reads a float16 lookup table (GGML_GELU_FP16), about 1e-3 relative
        // error, so the GELU families (Gemma's GeGLU, GPT-2) agree to 2e-3 of the logits' scale;
        // the SiLU families to 1e-4.
        const tol = lm.config.act === 'silu' ? 1e-4 : 2e-3;
        const logitDiff = diff / Math.max(scale, 1);
        const ours: number[] = [];
        for (let i = 0; i < N_PREDICT; i++) {
          const id = argmax(logits);
          ours.push(id);
          if (i + 1 < N_PREDICT) logits = seq.decode(id);
        }
        assert.deepEqual(ours, peer.outputs[p], `${arch} prompt ${p}: greedy continuations differ`);
        assert.ok(logitDiff <= tol, `${arch} prompt ${p}: first-step logits differ by ${diff} (scale ${scale})`);
      });
    });
  }
});
