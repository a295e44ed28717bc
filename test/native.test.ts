// The native core's process-level behaviour: instruction-set selection by environment,
// thread count, memory mapping, and computation off the main event loop.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { DTYPE_CODE, f16BitsToF32, f32ToF16Bits } from '../src/tensor/dtype.ts';
import { native, residentZeros } from '../src/tensor/native.ts';
import { Tensor } from '../src/tensor/tensor.ts';

const root = join(import.meta.dirname, '..');

function childInfo(env: Record<string, string>): { isa: string; threads: number; ok: boolean } {
  const script = `
    import { cpuBackend } from './src/tensor/cpu.ts';
    import { refBackend } from './src/tensor/ref.ts';
    import { Tensor } from './src/tensor/tensor.ts';
    const cpu = cpuBackend();
    const x = Tensor.from(Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i)), [3, 64]);
    const w = Tensor.from(Array.from({ length: 5 * 64 }, (_, i) => Math.cos(i)), [5, 64], 'q8_0');
    const a = Tensor.zeros([3, 5]), b = Tensor.zeros([3, 5]);
    cpu.matmul(x, w, a); refBackend.matmul(x, w, b);
    const ok = a.toF32().every((v, i) => Math.abs(v - b.toF32()[i]) < 1e-4);
    console.log(JSON.stringify({ isa: cpu.isa, threads: cpu.threads, ok }));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('native core: process-level behaviour', () => {
  it('SLIPSTREAM_NO_SIMD=1 selects the portable fallback, which computes correctly', () => {
    const r = childInfo({ SLIPSTREAM_NO_SIMD: '1' });
    assert.equal(r.isa, 'portable');
    assert.ok(r.ok);
  });

  it('SLIPSTREAM_THREADS sizes the thread pool', () => {
    assert.equal(childInfo({ SLIPSTREAM_THREADS: '3' }).threads, 3);
    assert.equal(childInfo({ SLIPSTREAM_THREADS: '1' }).threads, 1);
  });

  it('without overrides the best instruction set the CPU supports is chosen', () => {
    const r = childInfo({ SLIPSTREAM_NO_SIMD: '', SLIPSTREAM_ISA: '' });
    assert.equal(r.isa, native().info().available[0]);
  });

  it('f32 -> f16 conversion gives the reference bits on every instruction set (ties, subnormals, overflow, NaN)', () => {
    const special = [1, -2, 65504, 65519, 65520, 1e6, -1e6, Infinity, -Infinity, 0, -0, 2 ** -14, 1023 * 2 ** -24, 2 ** -24, 2 ** -25,
      3 * 2 ** -26, 3 * 2 ** -25, 0.1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 2047 * 2 ** -11 * 2 ** -14, NaN];
    let s = 7;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 2 ** ((s >>> 3) % 40 - 25);
    // 16- and 8-wide blocks, then a scalar tail, and an odd byte offset for the destination
    const src = Float32Array.from([...special, ...Array.from({ length: 1000 }, rnd)]);
    const cpu = cpuBackend();
    const before = cpu.isa;
    try {
      for (const isa of cpu.availableIsas()) {
        cpu.setIsa(isa as 'avx512' | 'avx2' | 'portable');
        for (const n of [src.length, 37, 7]) {
          const out = new Uint8Array(2 * n + 1);
          native().convert(src.subarray(0, n), DTYPE_CODE.f32, out.subarray(1), DTYPE_CODE.f16, n);
          const view = new DataView(out.buffer, 1);
          for (let i = 0; i < n; i++) {
            const got = view.getUint16(2 * i, true), want = f32ToF16Bits(src[i]!);
            if (Number.isNaN(src[i])) assert.ok(Number.isNaN(f16BitsToF32(got)), `${isa}: NaN stays NaN`);
            else assert.equal(got, want, `${isa}: ${src[i]} -> 0x${got.toString(16)}, expected 0x${want.toString(16)}`);
          }
        }
      }
    } finally {
      cpu.setIsa(before as 'avx512');
    }
  });

  it('residentZeros (the KV pools) gives each tensor its own page-aligned, zero-filled range of one block', () => {
    for (const shapes of [[[7, 2, 64, 16], [7, 2, 16, 64], [3]], [[600, 4, 64, 16], [600, 4, 16, 64]]] as number[][][]) {
      // the second case is over 2 MiB: huge pages requested, faulted in at allocation
      const ts = residentZeros(shapes, 'f32');
      let end = -1;
      for (const [i, t] of ts.entries()) {
        assert.deepEqual(t.shape, shapes[i]);
        assert.equal(native().addressMod(t.data, 4096), 0);
        assert.equal(t.data.buffer, ts[0]!.data.buffer);
        assert.ok(t.data.byteOffset >= end, 'ranges do not overlap');
        end = t.data.byteOffset + t.data.byteLength;
        assert.ok(t.data.every((b) => b === 0));
        t.data.fill(7);
      }
      assert.ok(ts.every((t) => t.data.every((b) => b === 7)));
    }
    assert.equal(native().allocResident(0, true, true).byteLength, 0);
  });

  it('residentZeros: one tensor alone starts on a page boundary, zero-filled, with the exact shape', () => {
    const cases: [number[], 'f32' | 'f16'][] = [
      [[7, 2, 64, 16], 'f32'],
      [[3, 1, 33, 5], 'f16'],
      [[1], 'f32'],
    ];
    for (const [shape, dtype] of cases) {
      const [t] = residentZeros([shape], dtype) as [Tensor];
      assert.deepEqual(t.shape, shape);
      assert.equal(native().addressMod(t.data, 4096), 0);
      assert.equal(t.data.byteLength, shape.reduce((a, b) => a * b, 1) * (dtype === 'f32' ? 4 : 2));
      assert.ok(t.data.every((b) => b === 0));
    }
  });

  it('mmapFile maps a file without copying; writes stay private; errors name the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ss-mmap-'));
    const p = join(dir, 'w.bin');
    const f = new Float32Array(1000).map((_, i) => i * 0.5);
    writeFileSync(p, new Uint8Array(f.buffer));
    const ab = native().mmapFile(p);
    assert.equal(ab.byteLength, 4000);
    const t = Tensor.fromF32(new Float32Array(ab), [10, 100]);
    assert.equal(t.toF32()[999], 499.5);
    // usable directly as a weight
    const out = Tensor.zeros([1, 10]);
    cpuBackend().matmul(Tensor.from(new Array(100).fill(1), [1, 100]), t, out);
    assert.equal(out.toF32()[0], (99 * 100) / 2 / 2);
    new Float32Array(ab)[0] = 42; // copy-on-write: the file is unchanged
    assert.equal(readFileSync(p).readFloatLE(0), 0);
    assert.throws(() => native().mmapFile(join(dir, 'missing.bin')), /mmapFile: cannot open '.*missing\.bin': No such file/);
    assert.throws(() => native().mmapFile(dir), /is not a regular file/);
    assert.equal(native().mmapFile(p).byteLength, 4000); // a second mapping of the same file
    writeFileSync(join(dir, 'empty'), '');
    assert.equal(native().mmapFile(join(dir, 'empty')).byteLength, 0);
  });

  it('a worker thread that owns the computation leaves the main event loop responsive', async () => {
    // The worker runs GEMMs (~3 ms each here) until the main thread sets a stop flag, which the
    // main thread's 10 ms timer does on its TICKS-th tick, each tick computing through the shared
    // pool too. The worker stops on the flag only if the main event loop ran while the worker's
    // native work was in flight; if the loop were held up, the worker would run out its cap of
    // GEMMs first (tens of seconds), however fast or loaded the machine. No wall-clock bound.
    const TICKS = 5;
    const CAP = 10_000;
    const shared = new Int32Array(new SharedArrayBuffer(8)); // [stop flag, GEMMs done]
    const worker = new Worker(new URL('./helpers/ts-worker.mjs', import.meta.url), {
      workerData: { M: 256, N: 512, K: 1024, reps: CAP, shared, __module: new URL('./helpers/compute-worker.ts', import.meta.url).href },
    });
    const done = new Promise<{ value: number; done: number; stopped: boolean }>((res, rej) => {
      worker.once('message', res);
      worker.once('error', rej);
    });
    let ticks = 0;
    const timer = setInterval(() => {
      // the main thread computes too, through the same pool
      const out = Tensor.zeros([1, 4]);
      cpuBackend().matmul(Tensor.from([1, 2, 3], [1, 3]), Tensor.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [4, 3]), out);
      assert.deepEqual(Array.from(out.toF32()), [1, 2, 3, 6]);
      if (++ticks === TICKS) Atomics.store(shared, 0, 1);
    }, 10);
    const r = await done;
    clearInterval(timer);
    await worker.terminate();
    assert.ok(r.stopped && r.done < CAP, `the worker ran all ${r.done} GEMMs before the main thread's timer ticked ${TICKS} times (${ticks})`);
    assert.ok(ticks >= TICKS);
    assert.equal(r.value, 1024 * 0.5 * 0.25);
    assert.equal(Atomics.load(shared, 1), r.done);
  });

  it('a worker that alone loaded the addon can be terminated: the pool threads outlive it (no crash at exit)', () => {
    // The serving engine loads the addon in its worker thread only. Node unloads an addon when
    // the last environment that loaded it goes away; the pool's threads run the addon's code, so
    // unloading it crashed the process at shutdown (SIGSEGV) unless the library is pinned.
    const script = `
      import { Worker } from 'node:worker_threads';
      const worker = new Worker(new URL('./test/helpers/ts-worker.mjs', 'file://' + process.cwd() + '/'), { execArgv: [],
        workerData: { M: 64, N: 256, K: 512, reps: 20, __module: new URL('./test/helpers/compute-worker.ts', 'file://' + process.cwd() + '/').href },
      });
      await new Promise((res, rej) => { worker.once('message', res); worker.once('error', rej); });
      await worker.terminate();
      await new Promise((r) => setTimeout(r, 300)); // pool threads spin, then sleep, in unloaded code
      console.log('ok');
    `;
    // without the pin: a SIGSEGV in about one run of three on a 2-core VM
    for (let i = 0; i < 5; i++) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, SLIPSTREAM_THREADS: '4' } });
      assert.equal(out.trim(), 'ok');
    }
  });
});
