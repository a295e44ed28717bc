// `slipstream` command line. Commands arrive issue by issue (serve, generate, convert,
// train); today: `info` (what the native core sees on this machine) and `bench kernels`.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';

const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };

const program = new Command();
program
  .name('slipstream')
  .description('Slipstream: an open generative-AI stack in TypeScript (serving engine, model zoo, training) on a native C++ compute core')
  .version(pkg.version, '-v, --version');

program
  .command('info')
  .description('show the native core: instruction set in use, those available, thread count')
  .action(async () => {
    const { native } = await import('../tensor/native.ts');
    const i = native().info();
    console.log(`slipstream ${pkg.version}`);
    console.log(`native core: isa ${i.isa} (available: ${i.available.join(', ')}), ${i.threads} threads`);
    console.log('environment: SLIPSTREAM_THREADS sets the thread count; SLIPSTREAM_NO_SIMD=1 forces the portable kernels');
  });

const bench = program.command('bench').description('benchmarks');
bench
  .command('kernels')
  .description("measure this machine's read bandwidth and FMA peak, then every kernel against them")
  .option('--quick', 'shorter measurements')
  .option('--json <file>', 'also write the results as JSON')
  .action(async (opts: { quick?: boolean; json?: string }) => {
    process.argv = [process.argv[0]!, 'kernels', ...(opts.quick ? ['--quick'] : []), ...(opts.json ? ['--json', opts.json] : [])];
    await import('../../bench/kernels.ts');
  });

program.showHelpAfterError();
await program.parseAsync(process.argv);
