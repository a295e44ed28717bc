// Kernel benchmark's command line; the benchmark itself is src/tensor/bench-kernels.ts (which
// `slipstream bench kernels` runs too).
//
//   npm run bench:kernels                 # all kernels, threads = SLIPSTREAM_THREADS or cores
//   npm run bench:kernels -- --quick      # shorter runs
//   npm run bench:kernels -- --json out.json
//   npm run bench:kernels -- --only gemv,attn   # sections: gemv, gemm, attn (ceilings always run)
//   npm run bench:kernels -- --only gemv --types q4_k,q6_k --shapes 14336x4096,4096x14336

import { runKernelBench } from '../src/tensor/bench-kernels.ts';
import { DTYPE_CODE, type DType } from '../src/tensor/dtype.ts';

const args = process.argv.slice(2);
const flag = (name: string) => (args.includes(name) ? (args[args.indexOf(name) + 1] ?? '') : undefined);
const types = flag('--types')?.split(',').map((t) => {
  if (!(t in DTYPE_CODE)) throw new Error(`--types: unknown weight type '${t}' (one of ${Object.keys(DTYPE_CODE).join(', ')})`);
  return t as DType;
});
const shapes = flag('--shapes')?.split(',').map((s) => {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`--shapes: '${s}' is not NxK (weight rows x columns, e.g. 14336x4096)`);
  return [Number(m[1]), Number(m[2])] as [number, number];
});
runKernelBench({
  types,
  shapes,
  quick: args.includes('--quick'),
  json: args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined,
  only: args.includes('--only') ? (args[args.indexOf('--only') + 1] ?? '').split(',') : undefined,
});
