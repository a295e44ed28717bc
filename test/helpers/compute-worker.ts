// A worker thread that owns computation, as the engine's model runner does: it runs long
// native matmuls and reports back, while the main thread's event loop stays free.
import { parentPort, workerData } from 'node:worker_threads';
import { cpuBackend } from '../../src/tensor/cpu.ts';
import { Tensor } from '../../src/tensor/tensor.ts';

const { M, N, K, reps } = workerData as { M: number; N: number; K: number; reps: number };
const cpu = cpuBackend();
const x = Tensor.zeros([M, K]);
x.f32().fill(0.5);
const w = Tensor.zeros([N, K]);
w.f32().fill(0.25);
const out = Tensor.zeros([M, N]);
const t0 = performance.now();
for (let i = 0; i < reps; i++) cpu.matmul(x, w, out);
parentPort!.postMessage({ ms: performance.now() - t0, value: out.f32()[0], isa: cpu.isa });
