// `slipstream generate`: load a model, stream a completion of one prompt to stdout, print one
// timing line to stderr. The request runs through the serving engine (src/engine/generate.ts), so
// stop strings and penalties behave as they do under `serve`.

import { defaultModelDir } from '../models/default.ts';
import { EngineError, type SamplingOptions } from '../engine/api.ts';
import { generate } from '../engine/generate.ts';
import { applyChatTemplate } from '../formats/chat-template.ts';
import { isKvDtype, KV_DTYPES, kvDtypeProblem, type KvDType } from '../models/kv.ts';
import { loadModel, LOAD_QUANTS, type LoadQuant } from '../models/load.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { UsageError } from '../errors.ts';
import { numFlag, parseSamplingFlags, type SamplingFlags } from './sampling-flags.ts';

export interface GenerateCliOptions extends SamplingFlags {
  model?: string;
  prompt: string;
  chat?: boolean;
  system?: string;
  quantize?: string;
  lora?: string;
  threads?: string;
  kvDtype?: string;
  mmap?: boolean;
}

export async function generateCommand(o: GenerateCliOptions): Promise<void> {
  // The sampling flags (shared with `chat`): checked before the model loads, a typo should not cost a load.
  const samplingFor = parseSamplingFlags(o, 128);
  if (o.quantize !== undefined && !(LOAD_QUANTS as readonly string[]).includes(o.quantize)) throw new UsageError(`--quantize supports ${LOAD_QUANTS.join(', ')}, got '${o.quantize}'`);
  if (o.kvDtype !== undefined && !isKvDtype(o.kvDtype)) throw new UsageError(`--kv-dtype must be ${KV_DTYPES.join(', ')}, got '${o.kvDtype}'`);
  const threads = o.threads === undefined ? undefined : numFlag('threads', o.threads, 0, true);
  if (threads !== undefined && (threads < 1 || threads > 1024)) throw new UsageError(`--threads must be in [1, 1024], got ${threads}`);
  const be = cpuBackend();
  if (threads !== undefined) be.setThreads(threads);

  const t0 = performance.now();
  const lm = await loadModel(o.model ?? defaultModelDir(), be, { quantize: o.quantize as LoadQuant | undefined, mmap: o.mmap !== false, lora: o.lora });
  const loadSeconds = (performance.now() - t0) / 1000;
  const { tokenizer, config, generation } = lm;
  const kvDtype: KvDType = (o.kvDtype as KvDType | undefined) ?? 'f32';
  const kvProblem = kvDtypeProblem(config, kvDtype);
  if (kvProblem) throw new UsageError(kvProblem);

  // With no sampling flags: the model's generation_config.json, else llama.cpp's defaults.
  const sampling: SamplingOptions = samplingFor(generation);
  const maxTokens = sampling.maxTokens;

  let prompt: number[];
  if (o.chat) {
    if (!tokenizer.chatTemplate) throw new UsageError(`--chat: ${lm.path} has no chat template`);
    const messages = [...(o.system ? [{ role: 'system', content: o.system }] : []), { role: 'user', content: o.prompt }];
    const text = applyChatTemplate(tokenizer.chatTemplate, messages, {
      addGenerationPrompt: true,
      bosToken: tokenizer.bosId !== null ? tokenizer.idToToken(tokenizer.bosId) : undefined,
      eosToken: tokenizer.eosIds.length ? tokenizer.idToToken(tokenizer.eosIds[0]!) : undefined,
    });
    prompt = tokenizer.encode(text, { addSpecialTokens: false });
  } else {
    prompt = tokenizer.encode(o.prompt, { addSpecialTokens: true });
  }
  if (prompt.length === 0) throw new UsageError('the prompt is empty after tokenization');
  if (prompt.length >= config.maxPosition) {
    throw new UsageError(`the prompt has ${prompt.length} tokens; the model's context is ${config.maxPosition}`);
  }
  // Generation stops at the end of the model's context.
  sampling.maxTokens = Math.min(maxTokens, config.maxPosition - prompt.length);

  let r;
  try {
    r = generate(lm.model, tokenizer, prompt, {
      sampling,
      kvDtype,
      eosIds: config.eosIds,
      onText: (text) => process.stdout.write(text),
    });
  } catch (e) {
    if (e instanceof EngineError && e.code !== 'internal') throw new UsageError(e.message);
    throw e;
  }
  process.stdout.write('\n');
  const gen = r.tokens.length;
  // The last sampled token is not fed back, so decode steps = generated - 1.
  const decodeRate = gen > 1 ? (gen - 1) / r.decodeSeconds : 0;
  process.stderr.write(
    `load ${loadSeconds.toFixed(2)} s | prompt ${r.promptTokens} tokens, prefill ${(r.promptTokens / r.prefillSeconds).toFixed(1)} tok/s | ` +
      `generated ${gen} tokens, decode ${decodeRate.toFixed(1)} tok/s | ${r.finishReason} | ${config.arch} ${lm.format}` +
      `${o.quantize ? ` (quantized ${o.quantize})` : ''}, ${be.threads} threads, ${be.isa}\n`,
  );
}
