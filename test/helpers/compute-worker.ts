// A worker thread that owns computation, as the engine's model runner does: it runs long
// native matmuls and reports back, while the main thread's event loop stays free. With
// workerData.shared ([stop flag, GEMMs done], an Int32Array on a SharedArrayBuffer) it stops
// once the main thread sets the flag, checked after each GEMM, and reports whether it did.
import { parentPort, workerData } from 'node:worker_threads';
import { cpuBackend } from '../../src/tensor/cpu.ts';
import { Tensor } from '../../src/tensor/tensor.ts';

const { M, N, K, reps, shared } = workerData as { M: number; N: number; K: number; reps: number; shared?: Int32Array };
const cpu = cpuBackend();
const x = Tensor.zeros([M, K]);
x.f32().fill(0.5);
const w = Tensor.zeros([N, K]);
w.f32().fill(0.25);
const out = Tensor.zeros([M, N]);
const t0 = performance.now();
let done = 0;
let stopped = false;
while (done < reps && !stopped) {
  cpu.matmul(x, w, out);
  done++;
  if (shared) {
    Atomics.store(shared, 1, done);
    stopped = Atomics.load(shared, 0) !== 0;
  }
}
parentPort!.postMessage({ ms: performance.now() - t0, value: out.f32()[0], isa: cpu.isa, done, stopped });
