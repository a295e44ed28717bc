// Kernel benchmark's command line; the benchmark itself is src/tensor/bench-kernels.ts (which
// `slipstream bench kernels` runs too).
//
//   npm run bench:kernels                 # all kernels, threads = SLIPSTREAM_THREADS or cores
//   npm run bench:kernels -- --quick      # shorter runs
//   npm run bench:kernels -- --json out.json
//   npm run bench:kernels -- --only gemv,attn   # sections: gemv, gemm, attn (ceilings always run)

import { runKernelBench } from '../src/tensor/bench-kernels.ts';

const args = process.argv.slice(2);
runKernelBench({
  quick: args.includes('--quick'),
  json: args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined,
  only: args.includes('--only') ? (args[args.indexOf('--only') + 1] ?? '').split(',') : undefined,
});
