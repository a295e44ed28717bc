// Whole-model A/B of two source trees in one process, so that a loaded or drifting machine hits
// both alike: OLD is another checkout (with its own `npm install`ed native build, e.g. a
// `git worktree add ../old REV`), NEW is this tree. Each side loads its own code and addon.
//
//   node --import tsx bench/ab-model.ts generate OLD_DIR MODEL.gguf [--reps 2] [--flip]
//     1 thread; a 256-token prompt in 32-token chunks, then 64 greedy tokens, the two sides
//     alternating every chunk and every decode step; prints ms per token and new/old, and checks
//     that both sides pick the same greedy tokens.
//   node --import tsx bench/ab-model.ts train OLD_DIR [--steps 8] [--flip]
//     bench:train's Llama (dim 384, 6 layers, vocabulary 8,192) at batch 8 x 256, 2 threads,
//     the sides alternating whole steps (forward, backward, AdamW) from the same init and batch;
//     prints the median step-time ratio and checks that the losses are bit-identical.
// --flip runs NEW first in each pair: the side that runs second was seen to lose 1-2%, so quote
// both orders.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { positionals, values: a } = parseArgs({
  allowPositionals: true,
  options: { reps: { type: 'string', default: '2' }, steps: { type: 'string', default: '8' }, flip: { type: 'boolean', default: false } },
});
const [mode, oldDir, model] = positionals;
if ((mode !== 'generate' && mode !== 'train') || !oldDir || (mode === 'generate' && !model)) {
  console.error('usage: bench/ab-model.ts generate OLD_DIR MODEL.gguf [--reps 2] [--flip] | train OLD_DIR [--steps 8] [--flip]');
  process.exit(2);
}
const roots = [resolve(oldDir), resolve(import.meta.dirname, '..')];
const order = a.flip ? [1, 0] : [0, 1]; // which side (0 old, 1 new) runs first in each pair
const med = (v: number[]) => v.slice().sort((x, y) => x - y)[v.length >> 1]!;
/** A module of a tree, at whichever of its historical paths exists (issue 18 moved some). */
const mod = (root: string, ...paths: string[]) => import(join(root, paths.find((p) => existsSync(join(root, p)))!));

async function generate(): Promise<void> {
  const sides = await Promise.all(
    roots.map(async (root) => {
      const { Sequence } = await mod(root, 'src/engine/generate.ts');
      const { argmax } = await mod(root, 'src/engine/sampler.ts');
      const { loadModelSync } = await mod(root, 'src/models/load.ts');
      const { cpuBackend } = await mod(root, 'src/tensor/cpu.ts');
      const be = cpuBackend();
      be.setThreads(1);
      return { Sequence, argmax, lm: loadModelSync(resolve(model!), be) };
    }),
  );
  let s = 12345;
  const V = sides[0]!.lm.config.vocabSize;
  const prompt = Array.from({ length: 256 }, () => 3 + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (V - 3)));
  const pre = [0, 0], dec = [0, 0];
  let same = true;
  for (let r = 0; r < Number(a.reps); r++) {
    const seqs = sides.map((x) => new x.Sequence(x.lm.model, { maxContext: 256 + 64 }));
    const logits: Float32Array[] = [new Float32Array(), new Float32Array()];
    for (let c = 0; c < 256; c += 32) {
      for (const k of order) {
        const t = performance.now();
        logits[k] = seqs[k]!.prefill(prompt.slice(c, c + 32));
        pre[k]! += performance.now() - t;
      }
    }
    for (let i = 0; i < 64; i++) {
      const tok = sides.map((x, k) => x.argmax(logits[k]!) as number);
      same &&= tok[0] === tok[1];
      for (const k of order) {
        const t = performance.now();
        logits[k] = seqs[k]!.decode(tok[k]!);
        dec[k]! += performance.now() - t;
      }
    }
  }
  const n = Number(a.reps);
  console.log(`prefill ms/token old ${(pre[0]! / (256 * n)).toFixed(3)} new ${(pre[1]! / (256 * n)).toFixed(3)} (new/old ${(pre[1]! / pre[0]!).toFixed(3)})`);
  console.log(`decode ms/token old ${(dec[0]! / (64 * n)).toFixed(2)} new ${(dec[1]! / (64 * n)).toFixed(2)} (new/old ${(dec[1]! / dec[0]!).toFixed(3)}); greedy tokens identical: ${same}`);
}

async function train(): Promise<void> {
  const B = 8, T = 256, D = 384, L = 6, H = 6, F = 1024, V = 8192;
  const steps = await Promise.all(
    roots.map(async (root) => {
      const { Tape } = await mod(root, 'src/tensor/autograd.ts', 'src/train/autograd.ts');
      const { CpuTrainKernels } = await mod(root, 'src/tensor/train-cpu.ts', 'src/train/cpu-kernels.ts');
      const { TrainModel } = await mod(root, 'src/train/model.ts');
      const { AdamW } = await mod(root, 'src/train/optim.ts');
      const { TrainRng } = await mod(root, 'src/train/rng.ts');
      const cfg = {
        arch: 'llama', vocabSize: V, dim: D, nLayers: L, nHeads: H, nKvHeads: H, headDim: D / H, ffnDim: F, maxPosition: T,
        normEps: 1e-5, rope: { theta: 10000, layout: 'half', dim: D / H }, act: 'silu', tieEmbeddings: false, slidingWindow: 0,
        slidingLayers: 'all', attnScale: 1 / Math.sqrt(D / H), attnSoftCap: 0, finalSoftCap: 0, embedScale: 1, nExperts: 0,
        nExpertsPerToken: 0, bosId: 0, eosIds: [1],
      };
      const rng = new TrainRng(1);
      const m = TrainModel.init(cfg, rng);
      const batch = {
        B, T,
        tokens: Int32Array.from({ length: B * T }, () => rng.nextU32() % V),
        targets: Int32Array.from({ length: B * T }, () => rng.nextU32() % V),
        seg: Int32Array.from({ length: B * T }, (_, i) => Math.floor(i / T)),
        positions: Int32Array.from({ length: B * T }, (_, i) => i % T),
      };
      const k = new CpuTrainKernels();
      const t = new Tape(k);
      const opt = new AdamW(m.trainable(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 }, k);
      return (): { ms: number; loss: number } => {
        const t0 = performance.now();
        const r = m.loss(t, batch, 1 / (B * T));
        t.backward();
        t.reset();
        opt.update(1e-4);
        return { ms: performance.now() - t0, loss: r.sum };
      };
    }),
  );
  steps[0]!();
  steps[1]!(); // warm-up: buffers allocated, pages faulted
  const ratios: number[] = [];
  let same = true;
  for (let s = 0; s < Number(a.steps); s++) {
    const r: { ms: number; loss: number }[] = [];
    for (const k of order) r[k] = steps[k]!();
    same &&= r[0]!.loss === r[1]!.loss;
    ratios.push(r[1]!.ms / r[0]!.ms);
    console.log(`step ${s}: old ${r[0]!.ms.toFixed(0)} ms, new ${r[1]!.ms.toFixed(0)} ms, loss ${r[1]!.loss.toFixed(4)}`);
  }
  console.log(`median new/old step time ${med(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}); losses bit-identical: ${same}`);
}

await (mode === 'generate' ? generate() : train());
