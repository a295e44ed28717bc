// What the engine's worker thread (worker.ts) and the main thread's host (worker-host.ts) share:
// the host's options, which travel to the worker as workerData, the KV pool sizing, and the
// messages each way. Both import this module; neither imports the other (the host starts the
// worker by its URL).

import { freemem } from 'node:os';
import type { EngineErrorCode, EngineStats, GenerateRequest, TokenEvent } from './api.ts';

export interface EngineHostOptions {
  /** A model directory, a .gguf file or hf:org/name. */
  model: string;
  /** Quantize f32/f16/bf16 weights at load (models/load.ts LoadOptions.quantize). */
  quantize?: 'q8_0' | 'q4_k';
  /** A PEFT LoRA adapter directory merged at load. */
  lora?: string;
  /** KV cache budget in bytes; default 40% of free memory, capped to what maxSeqs full contexts need. */
  kvCacheMemory?: number;
  maxBatchTokens?: number; // 512
  maxSeqs?: number; //        16
  maxWaiting?: number; //     256
  blockSize?: number; //      16
  /** KV cache dtype: f32 (default), f16 or q8_0 (0.53x of f16's bytes). */
  kvDtype?: 'f32' | 'f16' | 'q8_0';
  threads?: number;
  /** The name served in /v1/models (default: the model's file or directory name). */
  modelName?: string;
}

/** KV pool size in blocks: the budget given, else a share of free memory capped to what maxSeqs full contexts need. */
export function kvBlocksFor(bytesPerToken: number, blockSize: number, maxContext: number, maxSeqs: number, kvCacheMemory?: number): number {
  const perBlock = bytesPerToken * blockSize;
  let bytes = kvCacheMemory;
  if (bytes === undefined) {
    const need = Math.ceil(maxContext / blockSize) * perBlock * maxSeqs;
    bytes = Math.min(need, Math.floor(freemem() * 0.4));
  }
  if (!(bytes >= 0)) throw new Error(`kv cache memory must be a number of bytes >= 0, got ${bytes}`);
  const n = Math.floor(bytes / perBlock);
  if (n < 1) throw new Error(`kv cache memory of ${bytes} bytes holds no block of ${blockSize} tokens (${perBlock} bytes per block)`);
  return n;
}

/** Worker -> main thread; every message carries the engine's stats. */
export type FromWorker = { stats: EngineStats } & (
  | { type: 'ready'; maxContext: number; tokenizer: { json: object; config: object; file: string; eosIds: number[] }; kvBytesPerToken: number; numBlocks: number; blockSize: number }
  | { type: 'fatal'; message: string }
  | { type: 'accepted'; id: string }
  | { type: 'rejected'; id: string; code: EngineErrorCode; message: string }
  | { type: 'events'; events: TokenEvent[] }
  | { type: 'log'; msg: string }
);

/** Main thread -> worker. */
export type ToWorker = { type: 'submit'; req: GenerateRequest } | { type: 'abort'; id: string };
