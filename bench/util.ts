// Shared by the benchmark scripts: seeded inputs and a best-of-3 timer (src/util/bench.ts, which
// the kernel benchmark in src/tensor/ uses too).
export { type KernelRow, now, randomF32, timeBest } from '../src/util/bench.ts';

/**
 * `--isa avx512|avx2|portable` (or SLIPSTREAM_ISA already set): the instruction set the native
 * kernels of this process and of the processes it starts must use. Set before the native core
 * loads (it chooses once, at load); `checkIsa` then fails loudly if the CPU could not honour it,
 * instead of printing figures for another instruction set.
 */
export function isaFlag(args: readonly string[]): string | undefined {
  const i = args.indexOf('--isa');
  const want = i >= 0 ? args[i + 1] : process.env.SLIPSTREAM_ISA;
  if (i >= 0 && (!want || !['avx512', 'avx2', 'portable'].includes(want))) {
    console.error(`--isa: expected avx512, avx2 or portable, got ${want ?? 'nothing'}`);
    process.exit(2);
  }
  if (want) process.env.SLIPSTREAM_ISA = want;
  return want || undefined;
}

/** Exits with a message when the instruction set that ran is not the one asked for. */
export function checkIsa(want: string | undefined, ran: string, where: string): void {
  if (want && ran !== want) {
    console.error(`${where} ran ${ran} kernels, not the ${want} asked for (--isa / SLIPSTREAM_ISA): this CPU lacks it`);
    process.exit(2);
  }
}
