// Serving benchmark, both sides in one run on the same GGUF file (issue 4's targets):
//   - Slipstream: `slipstream serve` in its own process, driven by `slipstream bench serve`'s
//     client (vLLM's metric definitions) with S concurrent streams of N tokens;
//   - llama.cpp: node-llama-cpp 3.21.1 decoding S sequences in one context (compat/llamacpp/
//     parallel.mjs), the way the issue measured it;
//   - prefix caching: two requests sharing a ~1,000-token system prompt, one after the other;
//     the second's TTFT against the first's;
//   - under saturation: p99 inter-token latency against its median.
//
//   npm run bench:serve [-- --models tinyllama,stories110m] [--type q8_0|q4_k_m|...] [--streams 16] [--tokens 64] [--threads 2]
//                       [--isa avx512|avx2|portable]   (the server's kernels; default: the best this CPU has)

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { runServeBenchmark } from '../src/bench-serve/index.ts';
import { startServe } from '../src/server/process.ts';
import { benchModelFile, SHAPES, type BenchType } from './models.ts';
import { checkIsa, isaFlag } from './util.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const models = opt('models', 'tinyllama,stories110m').split(',');
const type = opt('type', 'q8_0') as BenchType;
const streams = Number(opt('streams', '16'));
const tokens = Number(opt('tokens', '64'));
const threads = Number(opt('threads', '2'));
const wantIsa = isaFlag(args); // inherited by the server processes through the environment
// KV cache dtype of both servers (llama.cpp runs a q8_0 cache with flash attention, which it needs for one)
const kvDtype = opt('kv-dtype', 'f32');
if (!['f32', 'f16', 'q8_0'].includes(kvDtype)) throw new Error(`--kv-dtype must be f32, f16 or q8_0, got ${kvDtype}`);
const root = join(import.meta.dirname, '..');
const compat = join(root, 'compat', 'llamacpp');

async function startServer(model: string) {
  return startServe(['--model', model, '--max-seqs', String(streams), '--threads', String(threads), '--kv-dtype', kvDtype], { SLIPSTREAM_THREADS: String(threads) });
}

/** The server's kernels, from its /metrics (slipstream_backend_info{backend, isa}). */
async function serverIsa(url: string): Promise<string> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return /^slipstream_backend_info\{[^}]*isa="([^"]+)"/m.exec(text)?.[1] ?? 'unknown';
}

const hardware = `${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, ${threads} threads`;
console.log(`# bench:serve — ${hardware}; ${streams} concurrent streams x ${tokens} output tokens, greedy (ignore_eos), ${kvDtype} KV cache`);
console.log('# peer: llama.cpp via node-llama-cpp 3.21.1, the same GGUF, the same threads, S sequences in one context (compat/llamacpp/parallel.mjs)');
for (const m of models) {
  const file = benchModelFile(m, type);
  const srv = await startServer(file);
  const isa = await serverIsa(srv.url);
  checkIsa(wantIsa, isa, 'slipstream serve');
  const r = await runServeBenchmark({ baseUrl: srv.url, numPrompts: streams * 2, maxConcurrency: streams, requestRate: Infinity, inputLen: 16, outputLen: tokens, hardware, label: `slipstream ${m} ${type} (${isa})` });
  const one = await runServeBenchmark({ baseUrl: srv.url, numPrompts: 4, maxConcurrency: 1, requestRate: Infinity, inputLen: 16, outputLen: tokens, hardware, warmup: false, seed: 7 });
  // ~1,000 shared tokens where the context allows (stories110M's is 1,024)
  const prefixLen = Math.min(1000, SHAPES[m]!.maxPosition! - 100);
  const prefix = await runServeBenchmark({ baseUrl: srv.url, numPrompts: 2, maxConcurrency: 1, requestRate: Infinity, inputLen: 24, outputLen: 4, sharedPrefixLen: prefixLen, warmup: false, seed: 11, hardware });
  const code = await srv.stop();
  const ttft = prefix.requests.map((q) => q.ttftMs);
  let peer: { totalTokPerSec: number; singleStreamTokPerSec: number } | null = null;
  if (existsSync(join(compat, 'node_modules', 'node-llama-cpp'))) {
    const p = spawnSync(process.execPath, [join(compat, 'parallel.mjs'), file, String(threads), String(streams), String(tokens), '16', `--kv=${kvDtype}`], { cwd: compat, encoding: 'utf8', maxBuffer: 16 << 20 });
    if (p.status === 0) peer = JSON.parse(p.stdout.trim().split('\n').pop()!);
    else console.log(`llama.cpp failed: ${p.stderr.slice(-500)}`);
  }
  const mt = r.metrics;
  const f = (v: number, d = 1) => v.toFixed(d);
  console.log(`\n${m} ${type} (${file}), Slipstream kernels: ${isa}`);
  console.log(`  ${streams} streams: Slipstream ${f(mt.outputThroughput)} output tok/s (${mt.completed} ok, ${mt.failed} failed); one stream ${f(one.metrics.outputThroughput)} tok/s`);
  if (peer) {
    console.log(`  llama.cpp: ${f(peer.totalTokPerSec)} tok/s with ${streams} sequences, ${f(peer.singleStreamTokPerSec)} with one`);
    console.log(`  ratio ${f(mt.outputThroughput / peer.totalTokPerSec, 2)}x (target >= 3x)`);
  }
  console.log(`  prefix cache (${prefix.requests.map((q) => q.promptLen).join(' and ')}-token prompts, ~${prefixLen} shared): TTFT ${f(ttft[0]!, 0)} ms (first) -> ${f(ttft[1]!, 0)} ms (second) = ${f((100 * ttft[1]!) / ttft[0]!, 1)}% (target <= 10%)`);
  console.log(`  saturated ITL: median ${f(mt.itlMs.median)} ms, p99 ${f(mt.itlMs.p99)} ms = ${f(mt.itlMs.p99 / mt.itlMs.median, 2)}x (target <= 3x); TTFT median ${f(mt.ttftMs.median, 0)} ms, TPOT median ${f(mt.tpotMs.median)} ms`);
  console.log(`  server exit code after SIGTERM: ${code}`);
}
