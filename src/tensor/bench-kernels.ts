// Kernel benchmark: measures this machine's ceilings (streaming read bandwidth, peak f32
// FMA rate) and then each kernel against them, in the same run: each row is three rounds of
// (the ceiling measured again, then the kernel), and prints the round with the median ratio;
// the bracket gives its share of the best ceiling the run has seen.
//
//   npm run bench:kernels                 # all kernels, threads = SLIPSTREAM_THREADS or cores
//   npm run bench:kernels -- --quick      # shorter runs
//   npm run bench:kernels -- --json out.json
//   npm run bench:kernels -- --only gemv,attn   # sections: gemv, gemm, attn (ceilings always run)
//   npm run bench:kernels -- --only gemv --types q4_k,q6_k --shapes 14336x4096,4096x14336
//                                        # matrix-vector rows of these weight types and [N x K] shapes
//   npx slipstream bench kernels [--quick] [--json out.json]
//
// It lives in src/tensor/ (bench/kernels.ts is its command line) because the CLI runs it and it
// drives the native core directly: its ceilings (benchRead, benchFma) and ISA switch have no
// Backend equivalent.
//
// Matrix-vector kernels rotate over copies of the weights totalling >= 512 MiB so that
// every call streams from DRAM, as a model's forward pass does (no cache-resident flattery).

import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { cpuBackend } from './cpu.ts';
import { bytesFor, DTYPE_CODE, type DType } from './dtype.ts';
import { native, residentZeros } from './native.ts';
import { Tensor } from './tensor.ts';
import { type KernelRow, randomF32, timeBest } from '../util/bench.ts';

export interface KernelBenchOptions {
  /** Shorter measurements. */
  quick?: boolean;
  /** Also write the results to this JSON file. */
  json?: string;
  /** Sections to run: gemv, gemm, attn (default all; the ceilings always run). */
  only?: string[];
  /** Weight types of the matrix-vector rows (default all). */
  types?: DType[];
  /** Weight shapes [N, K] of the matrix-vector rows (default TinyLlama's three). */
  shapes?: [number, number][];
}

/** Runs the kernel benchmark, printing its table to stdout (bench/kernels.ts, `slipstream bench kernels`). */
export function runKernelBench(opts: KernelBenchOptions = {}): void {
  const quick = opts.quick === true;
  const jsonPath = opts.json;
  const only = opts.only ?? ['gemv', 'gemm', 'attn'];
  for (const o of only) if (!['gemv', 'gemm', 'attn'].includes(o)) throw new Error(`--only: unknown section '${o}' (gemv, gemm, attn)`);
  const MIN_TIME = quick ? 0.15 : 0.5; // seconds per measurement
  const WORKING_SET = 1536 * 1024 * 1024; // beyond the 512 MiB L3 this VM reports

  const n = native();
  const cpu = cpuBackend();

  const time = (fn: (i: number) => void): number => timeBest(fn, MIN_TIME);


  /**
   * A weight matrix [N, K] of dtype, encoded natively, repeated to fill the working set (so that a
   * matrix-vector product streams from DRAM), or once (`single`: a GEMM, which reuses its weights
   * from cache).
   */
  function weightCopies(N: number, K: number, dtype: DType, single = false): Tensor[] {
    const f = randomF32(N * K, N + K);
    const one = new Uint8Array(bytesFor(dtype, N * K));
    n.convert(f, DTYPE_CODE.f32, one, DTYPE_CODE[dtype], N * K);
    const copies = single ? 1 : Math.max(1, Math.ceil(WORKING_SET / one.byteLength));
    const out: Tensor[] = [];
    for (let c = 0; c < copies; c++) {
      const b = c === 0 ? one : new Uint8Array(one.byteLength);
      if (c > 0) b.set(one);
      out.push(new Tensor(dtype, [N, K], b));
    }
    // SLIPSTREAM_PREPACK=all: q4_k copies prepacked now, not inside the timed calls (these are in
    // memory, not mapped, so the default leaves them as stored)
    for (const t of out) cpu.prepacked(t);
    return out;
  }

  interface Row extends KernelRow {
    ceiling: number; // measured just before this kernel
    fraction: number; // of that ceiling
    ofBest: number; // of the best ceiling this run has measured
    target?: number;
  }
  const rows: Row[] = [];

  /**
   * A kernel against a ceiling, in ROUNDS rounds of (the ceiling measured again, then the kernel):
   * this VM's memory speed drifts by up to 2x over minutes, so each ratio pairs a kernel figure with
   * a ceiling measured a second or two before it. Gives the round with the median ratio: its time
   * per call, its kernel figure (value(t)) and its ceiling, and the best ceiling seen so far.
   */
  const ROUNDS = quick ? 1 : 3;
  function rounds(
    run: (i: number) => void,
    value: (t: number) => number,
    ceilingNow: () => { now: number; best: number },
  ): { t: number; value: number; ceiling: { now: number; best: number } } {
    const r: { t: number; value: number; now: number }[] = [];
    let best = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const c = ceilingNow();
      best = Math.max(best, c.best);
      const t = time(run);
      r.push({ t, value: value(t), now: c.now });
    }
    r.sort((a, b) => a.value / a.now - b.value / b.now);
    const m = r[(r.length - 1) >> 1]!;
    return { t: m.t, value: m.value, ceiling: { now: m.now, best } };
  }

  function report(r: Omit<Row, 'ceiling' | 'fraction' | 'ofBest'>, ceiling: { now: number; best: number }): void {
    const row: Row = { ...r, ceiling: ceiling.now, fraction: r.value / ceiling.now, ofBest: r.value / ceiling.best };
    rows.push(row);
    const pct = (row.fraction * 100).toFixed(0).padStart(4) + '%';
    const tgt = row.target !== undefined ? `  (target ${(row.target * 100).toFixed(0)}%: ${row.fraction >= row.target ? 'met' : 'MISSED'})` : '';
    console.log(
      `${row.kernel.padEnd(22)} ${row.shape.padEnd(20)} ${row.time_us.toFixed(1).padStart(10)} us ${row.value.toFixed(1).padStart(8)} ${row.unit.padEnd(8)} ${pct} of ${ceiling.now.toFixed(1).padStart(5)} [${(row.ofBest * 100).toFixed(0).padStart(3)}% of ${ceiling.best.toFixed(1)}]${tgt}`,
    );
  }

  // ---- ceilings ------------------------------------------------------------------------------

  const info = n.info();
  console.log(`slipstream kernel benchmark: ${cpus()[0]?.model ?? 'unknown cpu'}, ${info.threads} threads, isa ${info.isa} (available: ${info.available.join(', ')})`);

  const bwBuf = new Float32Array((2048 * 1024 * 1024) / 4);
  bwBuf.fill(1); // touch every page so the read is real
  // The ceiling is the best of two access patterns: one sequential stream per thread, and four
  // interleaved streams per thread (the way a GEMV tile reads four weight rows).
  const bw: Record<string, number> = {};
  for (const streams of [1, 4]) bw[streams] = bwBuf.byteLength / time(() => n.benchRead(bwBuf, streams)) / 1e9;
  const readBW = Math.max(...Object.values(bw));
  // Each bandwidth-bound kernel is compared with this ceiling measured again in each of its rounds
  // (see rounds()).
  /** A ceiling measured again on each call, with the best value seen so far. */
  function tracked(first: number, measure: () => number): () => { now: number; best: number } {
    let best = first;
    return () => {
      const now = measure();
      best = Math.max(best, now);
      return { now, best };
    };
  }
  /** The read ceiling of buf again, shorter runs: the best of 1 and 4 streams per thread, GB/s. */
  const rereadCeiling = (buf: Float32Array) => () =>
    Math.max(...[1, 4].map((st) => buf.byteLength / timeBest(() => n.benchRead(buf, st), Math.min(MIN_TIME, 0.2)) / 1e9));
  const readCeilingNow = tracked(readBW, rereadCeiling(bwBuf));
  console.log(
    `ceiling: streaming read bandwidth ${readBW.toFixed(1)} GB/s (2 GiB, ${info.threads} threads; 1 stream/thread ${bw[1]!.toFixed(1)}, 4 streams/thread ${bw[4]!.toFixed(1)})`,
  );

  const peaks: Record<string, number> = {};
  for (const isa of info.available) {
    if (isa === 'portable') continue;
    n.setIsa(isa as 'avx512' | 'avx2');
    let flops = 0;
    const t = time(() => {
      flops = n.benchFma(quick ? 2_000_000 : 5_000_000);
    });
    peaks[isa] = flops / t / 1e9;
    console.log(`ceiling: f32 FMA peak (${isa}) ${peaks[isa]!.toFixed(1)} GFLOP/s`);
  }
  n.setIsa(info.isa as 'avx512' | 'avx2' | 'portable');
  const fmaPeak = peaks[info.isa] ?? Math.max(1, ...Object.values(peaks));
  const fmaCeilingNow = tracked(fmaPeak, () => {
    if (info.isa === 'portable') return fmaPeak;
    let flops = 0;
    const t = timeBest(() => {
      flops = n.benchFma(2_000_000);
    }, 0.1);
    return flops / t / 1e9;
  });
  console.log(
    `kernels run on ${info.isa}: compute ratios below are against its peak, ${fmaPeak.toFixed(1)} GFLOP/s` +
      (peaks.avx2 && info.isa !== 'avx2' ? ` (the AVX2 peak, ${peaks.avx2.toFixed(1)} GFLOP/s, is printed in brackets)` : ''),
  );
  console.log('');

  // ---- matrix-vector (decode): bandwidth bound ----------------------------------------------

  const gemvShapes: [number, number][] = opts.shapes ?? [
    [2048, 5632],
    [5632, 2048],
    [32000, 2048],
  ];
  const gemvTypes = opts.types ?? (['q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_xs', 'q8_0', 'f16', 'bf16', 'f32'] as DType[]);
  for (const dtype of only.includes('gemv') ? gemvTypes : []) {
    for (const [N, K] of gemvShapes) {
      const ws = weightCopies(N, K, dtype);
      const x = Tensor.fromF32(randomF32(K, 7), [1, K]);
      const out = Tensor.zeros([1, N]);
      const bytes = bytesFor(dtype, N * K) + K * 4 + N * 4;
      const m = rounds((i) => cpu.matmul(x, ws[i % ws.length]!, out), (t) => bytes / t / 1e9, readCeilingNow);
      report({ kernel: `gemv ${dtype}`, shape: `1x${K} . ${N}x${K}`, time_us: m.t * 1e6, value: m.value, unit: 'GB/s', target: 0.85 }, m.ceiling);
    }
  }
  console.log('');

  // ---- GEMM (prefill, batched decode): compute bound ------------------------------------------

  function gemm(label: string, M: number, N: number, K: number, dtype: DType): void {
    const w = weightCopies(N, K, dtype, true)[0]!;
    const x = Tensor.fromF32(randomF32(M * K, 3), [M, K]);
    const out = Tensor.zeros([M, N]);
    const m = rounds(() => cpu.matmul(x, w, out), (t) => (2 * M * N * K) / t / 1e9, fmaCeilingNow);
    const gf = m.value;
    report({ kernel: label, shape: `${M}x${K} . ${N}x${K}`, time_us: m.t * 1e6, value: gf, unit: 'GFLOP/s', target: 0.7 }, m.ceiling);
    if (peaks.avx2 && info.isa !== 'avx2') console.log(`${''.padEnd(22)} [${((gf / peaks.avx2) * 100).toFixed(0)}% of the AVX2 FMA peak]`);
  }
  if (only.includes('gemm')) {
    gemm('gemm f32', 1024, 1024, 1024, 'f32');
    gemm('gemm q8_0', 16, 2048, 5632, 'q8_0');
    gemm('gemm q8_0', 64, 2048, 5632, 'q8_0');
    gemm('gemm q8_0', 512, 2048, 2048, 'q8_0');
    gemm('gemm f16', 64, 2048, 5632, 'f16');
    gemm('gemm q4_k', 16, 2048, 5632, 'q4_k');
    gemm('gemm q4_k', 64, 2048, 5632, 'q4_k');
    gemm('gemm q4_k', 512, 2048, 2048, 'q4_k');
    gemm('gemm q5_k', 64, 2048, 5632, 'q5_k');
    gemm('gemm q6_k', 64, 2048, 5632, 'q6_k');
    for (const t of ['q2_k', 'q3_k', 'iq4_xs'] as const) gemm(`gemm ${t}`, 64, 2048, 5632, t);
    gemm('gemm q3_k', 512, 2048, 2048, 'q3_k');
    for (const t of ['q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'] as const) gemm(`gemm ${t}`, 64, 2048, 5632, t);
    console.log('');
  }

  // ---- decode attention over a paged cache: bandwidth bound -----------------------------------

  // The KV pools live on transparent huge pages (residentZeros in src/tensor/native.ts), where
  // this VM reads faster than on 4 KiB pages; the attention rows are held to a read ceiling
  // measured on huge pages too, so the page size does not flatter them.
  let hugeCeilingNow: (() => { now: number; best: number }) | null = null;
  if (only.includes('attn')) {
    const hugeBuf = new Float32Array(n.allocResident(1024 * 1024 * 1024, true, true)).fill(1);
    const first = rereadCeiling(hugeBuf)();
    hugeCeilingNow = tracked(first, rereadCeiling(hugeBuf));
    console.log(`ceiling: streaming read bandwidth on huge pages (the KV pools') ${first.toFixed(1)} GB/s (1 GiB)`);
  }

  for (const cdt of only.includes('attn') ? (['f32', 'f16'] as const) : []) {
    const B = 16, L = 1024, Hq = 32, Hkv = 4, D = 64, bs = 16;
    const blocksPerSeq = L / bs;
    const nBlocks = B * blocksPerSeq;
    const layers = Math.max(1, Math.ceil(WORKING_SET / 2 / (2 * bytesFor(cdt, nBlocks * Hkv * bs * D))));
    const caches: [Tensor, Tensor][] = [];
    for (let l = 0; l < layers; l++) {
      // key pool, value pool, as the engine's KvPool allocates them (huge pages, faulted in)
      const [k, v] = residentZeros([[nBlocks, Hkv, D, bs], [nBlocks, Hkv, bs, D]], cdt);
      for (const t of [k!, v!]) {
        const f = randomF32(nBlocks * Hkv * bs * D, l + 11);
        n.convert(f, DTYPE_CODE.f32, t.data, DTYPE_CODE[cdt], f.length);
      }
      caches.push([k!, v!]);
    }
    const tables = new Int32Array(B * blocksPerSeq);
    for (let i = 0; i < tables.length; i++) tables[i] = i; // contiguous per sequence (order does not change the bytes read)
    const lens = new Int32Array(B).fill(L);
    const q = Tensor.fromF32(randomF32(B * Hq * D, 5), [B, Hq, D]);
    const out = Tensor.zeros([B, Hq, D]);
    const opts = { scale: 1 / Math.sqrt(D) };
    const bytes = 2 * bytesFor(cdt, B * L * Hkv * D);
    const m = rounds(
      (i) => {
        const [k, v] = caches[i % caches.length]!;
        cpu.attentionDecode(q, k, v, tables, blocksPerSeq, lens, out, opts);
      },
      (t) => bytes / t / 1e9,
      hugeCeilingNow!,
    );
    const t = m.t, ceiling = m.ceiling;
    report({ kernel: `decode attn kv ${cdt}`, shape: `${B} seqs x ${L} tok`, time_us: t * 1e6, value: m.value, unit: 'GB/s', target: 0.7 }, ceiling);
    // Each key and value element serves Hq / Hkv query heads (2 FLOPs each), so an f16 cache is
    // 8 FLOP/byte here: about this machine's balance point, where the FMAs take as long as the read.
    const flops = 4 * B * L * Hq * D;
    const tRead = bytes / (ceiling.now * 1e9), tFma = flops / (fmaPeak * 1e9);
    console.log(
      `${''.padEnd(22)} ${(flops / bytes).toFixed(1)} FLOP/byte: ${(tRead * 1e6).toFixed(0)} us to read, ${(tFma * 1e6).toFixed(0)} us of FMAs at the peak; ` +
        `${((Math.max(tRead, tFma) / t) * 100).toFixed(0)}% of that roofline (the 70% target needs the FMAs at ${((tFma / (tRead / 0.7)) * 100).toFixed(0)}% of the peak)`,
    );
  }

  if (jsonPath) {
    writeFileSync(jsonPath, JSON.stringify({ cpu: cpus()[0]?.model, threads: info.threads, isa: info.isa, readBW, peaks, rows }, null, 2));
    console.log(`\nwrote ${jsonPath}`);
  }
}
