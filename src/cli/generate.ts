// `slipstream generate`: load a model, stream a completion of one prompt to stdout, print one
// timing line to stderr. The request runs through the serving engine (src/engine/generate.ts), so
// stop strings and penalties behave as they do under `serve`.

import { defaultModelDir } from '../models/default.ts';
import { EngineError, type SamplingOptions } from '../engine/api.ts';
import { generate } from '../engine/generate.ts';
import { validateSampling } from '../engine/sampler.ts';
import { applyChatTemplate } from '../formats/chat-template.ts';
import { loadModel } from '../models/load.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { UsageError } from '../errors.ts';

export interface GenerateCliOptions {
  model?: string;
  prompt: string;
  maxTokens: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  minP?: string;
  seed?: string;
  stop?: string[];
  repetitionPenalty?: string;
  presencePenalty?: string;
  frequencyPenalty?: string;
  ignoreEos?: boolean;
  chat?: boolean;
  system?: string;
  quantize?: string;
  lora?: string;
  threads?: string;
  kvDtype?: string;
  mmap?: boolean;
}

function numOpt(name: string, v: string | undefined, fallback: number, int = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${int ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

/** A number flag in [min, max] (or (above, max]); the ranges are those `serve` accepts (src/server/validate.ts). */
function rangeOpt(name: string, v: string | undefined, fallback: number, r: { min?: number; above?: number; max: number }): number {
  const n = numOpt(name, v, fallback);
  if (v === undefined) return n;
  if (r.above !== undefined && !(n > r.above && n <= r.max)) throw new UsageError(`--${name} must be in (${r.above}, ${r.max}], got ${n}`);
  if (r.min !== undefined && !(n >= r.min && n <= r.max)) throw new UsageError(`--${name} must be in [${r.min}, ${r.max}], got ${n}`);
  return n;
}

/** Stop strings as `serve` takes them: at most 16, none empty. */
function stopOpt(v: string[] | undefined): string[] {
  const stop = v ?? [];
  if (stop.length > 16) throw new UsageError(`--stop may be given at most 16 times, got ${stop.length}`);
  if (stop.some((s) => s === '')) throw new UsageError('--stop must be a non-empty string');
  return stop;
}

export async function generateCommand(o: GenerateCliOptions): Promise<void> {
  const maxTokens = numOpt('max-tokens', o.maxTokens, 128, true);
  if (maxTokens < 1) throw new UsageError(`--max-tokens must be >= 1, got ${maxTokens}`);
  if (o.quantize !== undefined && o.quantize !== 'q8_0') throw new UsageError(`--quantize supports q8_0, got '${o.quantize}'`);
  if (o.kvDtype !== undefined && o.kvDtype !== 'f32' && o.kvDtype !== 'f16') throw new UsageError(`--kv-dtype must be f32 or f16, got '${o.kvDtype}'`);
  // Penalties and stop strings: checked before the model loads (the sampling defaults need it).
  const repetitionPenalty = rangeOpt('repetition-penalty', o.repetitionPenalty, 1, { above: 0, max: 10 });
  const presencePenalty = rangeOpt('presence-penalty', o.presencePenalty, 0, { min: -2, max: 2 });
  const frequencyPenalty = rangeOpt('frequency-penalty', o.frequencyPenalty, 0, { min: -2, max: 2 });
  const stop = stopOpt(o.stop);
  const threads = o.threads === undefined ? undefined : numOpt('threads', o.threads, 0, true);
  if (threads !== undefined && (threads < 1 || threads > 1024)) throw new UsageError(`--threads must be in [1, 1024], got ${threads}`);
  // The sampling flags given: checked before the model loads (a typo should not cost a load).
  for (const [name, v, int] of [['temperature', o.temperature, false], ['top-k', o.topK, true], ['top-p', o.topP, false], ['min-p', o.minP, false]] as const) numOpt(name, v, 0, int);
  const be = cpuBackend();
  if (threads !== undefined) be.setThreads(threads);

  const t0 = performance.now();
  const lm = await loadModel(o.model ?? defaultModelDir(), be, { quantize: o.quantize as 'q8_0' | undefined, mmap: o.mmap !== false, lora: o.lora });
  const loadSeconds = (performance.now() - t0) / 1000;
  const { tokenizer, config, generation } = lm;

  const sampling: SamplingOptions = {
    // With no sampling flags: the model's generation_config.json, else llama.cpp's defaults.
    temperature: numOpt('temperature', o.temperature, generation.temperature ?? 0.8),
    topK: numOpt('top-k', o.topK, generation.topK ?? 40, true),
    topP: numOpt('top-p', o.topP, generation.topP ?? 0.95),
    minP: numOpt('min-p', o.minP, 0.05),
    seed: o.seed === undefined ? undefined : numOpt('seed', o.seed, 0, true),
    repetitionPenalty,
    presencePenalty,
    frequencyPenalty,
    stop,
    stopTokenIds: [],
    ignoreEos: o.ignoreEos === true,
    maxTokens,
    n: 1,
  };
  const bad = validateSampling(sampling);
  // The sampler names the API's fields (top_k); the user typed flags (--top-k).
  if (bad) throw new UsageError(`--${bad.replace(/^(\w+)/, (f) => f.replace(/_/g, '-'))}`);

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
      kvDtype: (o.kvDtype as 'f32' | 'f16' | undefined) ?? 'f32',
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
