// Generation benchmark: Slipstream and llama.cpp (node-llama-cpp 3.21.1, compat/llamacpp/) on the
// same GGUF files, side by side in one run, same thread count. Models are random-weight Llamas in
// the stories110M, TinyLlama-1.1B and Llama-3-8B shapes (made once into bench/out/models/, see
// models.ts), in q8_0 and f16 by default, or any of BENCH_TYPES (q4_k_m: llama.cpp's Q4_K_M mix).
// Also measures this machine's read bandwidth (again before each run pair: it drifts), so decode
// speed is shown against its roofline (weight bytes per token / bandwidth).
//
//   npm run bench:generate [-- --quick] [--models tinyllama,stories110m,llama3-8b] [--types q8_0,f16,q4_k_m,...]
//                          [--threads 2] [--prompt 512] [--decode 128] [--reps 3] [--json out.json]
//                          [--isa avx512|avx2|portable]   (Slipstream's kernels; default: the best this CPU has)

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { benchModelFile, type BenchType } from './models.ts';
import { native } from '../src/tensor/native.ts';
import { checkIsa, isaFlag } from './util.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const quick = args.includes('--quick');
const threads = Number(opt('threads', '2'));
const promptLen = Number(opt('prompt', quick ? '128' : '512'));
const decodeLen = Number(opt('decode', quick ? '32' : '128'));
const models = opt('models', 'stories110m,tinyllama').split(',');
const types = opt('types', 'q8_0,f16').split(',') as BenchType[];
const reps = Number(opt('reps', quick ? '1' : '3'));
// KV cache dtype of both engines (llama.cpp runs a q8_0 cache with flash attention, which it needs for one)
const kvDtype = opt('kv-dtype', 'f32');
if (!['f32', 'f16', 'q8_0'].includes(kvDtype)) throw new Error(`--kv-dtype must be f32, f16 or q8_0, got ${kvDtype}`);
const root = join(import.meta.dirname, '..');
const wantIsa = isaFlag(args); // before the native core loads: it picks its kernels once

function medians(runs: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(runs[0]!)) {
    if (typeof runs[0]![k] !== 'number') continue;
    const v = runs.map((r) => r[k]!).sort((a, b) => a - b);
    out[k] = v[Math.floor(v.length / 2)]!;
  }
  return out;
}
const compat = join(root, 'compat', 'llamacpp');

function runJson(cmd: string[], cwd: string): Record<string, number> {
  const r = spawnSync(process.execPath, cmd, { cwd, encoding: 'utf8', maxBuffer: 16 << 20, env: { ...process.env, SLIPSTREAM_THREADS: String(threads) } });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as Record<string, number>;
}

// Read bandwidth ceiling, as bench:kernels measures it (best of 1 and 4 streams, 2 GiB).
const n = native();
const isa = n.info().isa;
checkIsa(wantIsa, isa, 'bench:generate');
const buf = new Float32Array((2 * 1024 ** 3) / 4).fill(1);
/** Read bandwidth now: the best of 3 reads of the 2 GiB buffer with 1 and with 4 streams per thread. */
function readBandwidth(): number {
  let best = 0;
  for (const streams of [1, 4]) {
    for (let rep = 0; rep < 3; rep++) {
      const t = performance.now();
      n.benchRead(buf, streams);
      best = Math.max(best, buf.byteLength / ((performance.now() - t) / 1000));
    }
  }
  return best;
}
// This VM's memory speed drifts (32-41 GB/s within one session), so each row's roofline uses the
// median of the bandwidth measured again before each of its alternating runs, not this first one.
const bw = readBandwidth();

const peerInstalled = existsSync(join(compat, 'node_modules', 'node-llama-cpp'));
console.log(`# bench:generate — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, ${threads} threads, Slipstream kernels ${isa} (--isa avx2|portable forces one)`);
console.log(`# read bandwidth (measured now): ${(bw / 1e9).toFixed(1)} GB/s (each row's roofline: the median measured before its runs); prompt ${promptLen} tokens, decode ${decodeLen} tokens, greedy, ${kvDtype} KV cache; medians of ${reps} alternating runs`);
console.log(`# peer: llama.cpp via node-llama-cpp 3.21.1 (compat/llamacpp)${peerInstalled ? '' : ' — NOT INSTALLED: run `npm ci --prefix compat/llamacpp`'}`);

const rows: Record<string, unknown>[] = [];
for (const m of models) {
  for (const type of types) {
    const file = benchModelFile(m, type);
    // Alternate the two engines `reps` times and keep each metric's median: this VM's memory
    // bandwidth drifts by up to 1.5x over minutes, and alternating exposes both to the same drift.
    const ssRuns: Record<string, number>[] = [], lcRuns: Record<string, number>[] = [];
    const bws: number[] = [];
    for (let r = 0; r < reps; r++) {
      bws.push(readBandwidth());
      ssRuns.push(runJson(['--import', 'tsx', join(root, 'bench', 'generate-one.ts'), file, String(threads), String(promptLen), String(decodeLen), kvDtype], root));
      if (peerInstalled) lcRuns.push(runJson([join(compat, 'bench.mjs'), file, String(threads), String(promptLen), String(decodeLen), '--reps=1', `--kv=${kvDtype}`], compat));
    }
    // Each measurement is its own process: it must have run the kernels this header names.
    checkIsa(isa, String((ssRuns[0] as Record<string, unknown>).isa), `bench/generate-one.ts on ${m} ${type}`);
    const ss = medians(ssRuns);
    const lc = peerInstalled ? medians(lcRuns) : null;
    const rowBw = bws.slice().sort((x, y) => x - y)[bws.length >> 1]!;
    const roof = rowBw / ss.weightBytes!; // tokens/s if decode only streamed the weights once at full bandwidth
    const row = {
      model: m, type, isa, weightsMB: ss.weightBytes! / 1e6,
      slipstream: ss, llamacpp: lc,
      readBandwidth: rowBw, decodeRoofline: roof,
      decodeVsPeer: lc ? ss.decodeTokPerSec! / lc.decodeTokPerSec! : null,
      prefillVsPeer: lc ? ss.prefillTokPerSec! / lc.prefillTokPerSec! : null,
      rssOverWeightsKv: ss.rssBytes! / (ss.weightBytes! + ss.kvBytes!),
    };
    rows.push(row);
    const f = (v: number | undefined | null, d = 1) => (v === undefined || v === null ? '-' : v.toFixed(d));
    console.log(
      `${m.padEnd(12)} ${type.padEnd(5)} ${isa.padEnd(8)} ${f(row.weightsMB, 0).padStart(6)} MB | decode ${f(ss.decodeTokPerSec).padStart(6)} tok/s ` +
        `(${f((100 * ss.decodeTokPerSec!) / roof, 0)}% of roofline ${f(roof)} at ${f(rowBw / 1e9)} GB/s) vs llama.cpp ${f(lc?.decodeTokPerSec)} -> ${f(row.decodeVsPeer, 2)}x | ` +
        `prefill ${f(ss.prefillTokPerSec).padStart(6)} tok/s vs ${f(lc?.prefillTokPerSec)} -> ${f(row.prefillVsPeer, 2)}x | ` +
        `load ${f(ss.loadSeconds, 2)} s (first forward, 8 tokens ${f(ss.firstForwardSeconds, 2)} s) vs ${f(lc?.loadSeconds, 2)} s | RSS ${f(ss.rssBytes! / 1e6, 0)} MB = ${f(row.rssOverWeightsKv, 2)}x (weights + KV)`,
    );
  }
}
const json = opt('json', '');
if (json) writeFileSync(json, JSON.stringify({ isa, cpu: cpus()[0]?.model, readBandwidth: bw, threads, promptLen, decodeLen, rows }, null, 2));
