// Slipstream's public API (package.json "main"): load a model, run the serving engine on it
// (in this thread, or in a worker thread behind an EngineClient), serve it over HTTP, and the
// pieces they are made of. TypeScript sources, run through tsx as bin/slipstream.js does.

// models
export { loadModel, loadModelSync, type LoadedModel, type LoadOptions } from './models/load.ts';
export { KvPool } from './models/kv.ts';

// engine
export { Engine, type EngineOptions } from './engine/engine.ts';
export {
  EngineError, type EngineClient, type EngineErrorCode, type EngineStats, type FinishReason, type GenerateRequest, type SamplingOptions, type TokenEvent,
} from './engine/api.ts';
export { startEngineHost, type EngineHost, type EngineHostOptions } from './engine/worker-host.ts';

// server
export { buildServer, type ServerOptions } from './server/app.ts';

// tokenizers and checkpoint formats
export { Tokenizer } from './formats/tokenizer.ts';
export { readGguf, writeGguf, type GgufFile } from './formats/gguf.ts';
export { openSafetensorsCheckpoint, writeSafetensors } from './formats/safetensors.ts';
export { FormatError } from './formats/errors.ts';

// compute backends and tensors
export type { Backend } from './tensor/backend.ts';
export { cpuBackend, CpuBackend } from './tensor/cpu.ts';
export { refBackend, RefBackend } from './tensor/ref.ts';
export { Tensor } from './tensor/tensor.ts';
export type { DType } from './tensor/dtype.ts';
export { cpuInfo, nativeAvailable, setThreads } from './tensor/runtime.ts';
export { OpError } from './tensor/check.ts';

export { UsageError } from './errors.ts';
