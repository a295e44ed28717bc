// `slipstream generate`: load a model, stream a completion of one prompt to stdout, print one
// timing line to stderr.

import { defaultModelDir } from '../models/default.ts';
import { IncrementalDetokenizer } from '../engine/detokenizer.ts';
import { generate, Sequence } from '../engine/generate.ts';
import { validateSampling, type SamplingParams } from '../engine/sampler.ts';
import { applyChatTemplate } from '../formats/chat-template.ts';
import { loadModel } from '../models/load.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { UsageError } from './errors.ts';

export interface GenerateCliOptions {
  model?: string;
  prompt: string;
  maxTokens: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  minP?: string;
  seed?: string;
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

export async function generateCommand(o: GenerateCliOptions): Promise<void> {
  const maxTokens = numOpt('max-tokens', o.maxTokens, 128, true);
  if (maxTokens < 1) throw new UsageError(`--max-tokens must be >= 1, got ${maxTokens}`);
  if (o.quantize !== undefined && o.quantize !== 'q8_0') throw new UsageError(`--quantize supports q8_0, got '${o.quantize}'`);
  if (o.kvDtype !== undefined && o.kvDtype !== 'f32' && o.kvDtype !== 'f16') throw new UsageError(`--kv-dtype must be f32 or f16, got '${o.kvDtype}'`);
  const be = cpuBackend();
  if (o.threads !== undefined) be.setThreads(numOpt('threads', o.threads, 0, true));

  const t0 = performance.now();
  const lm = await loadModel(o.model ?? defaultModelDir(), be, { quantize: o.quantize as 'q8_0' | undefined, mmap: o.mmap !== false, lora: o.lora });
  const loadSeconds = (performance.now() - t0) / 1000;
  const { tokenizer, config, generation } = lm;

  const sampling: SamplingParams = {
    // With no sampling flags: the model's generation_config.json, else llama.cpp's defaults.
    temperature: numOpt('temperature', o.temperature, generation.temperature ?? 0.8),
    topK: numOpt('top-k', o.topK, generation.topK ?? 40, true),
    topP: numOpt('top-p', o.topP, generation.topP ?? 0.95),
    minP: numOpt('min-p', o.minP, 0.05),
    seed: o.seed === undefined ? undefined : numOpt('seed', o.seed, 0, true),
  };
  const bad = validateSampling(sampling);
  if (bad) throw new UsageError(bad);

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
  const maxContext = Math.min(config.maxPosition, prompt.length + maxTokens);
  if (prompt.length >= config.maxPosition) {
    throw new UsageError(`the prompt has ${prompt.length} tokens; the model's context is ${config.maxPosition}`);
  }

  const seq = new Sequence(lm.model, { maxContext, kvDtype: (o.kvDtype as 'f32' | 'f16' | undefined) ?? 'f32' });
  const detok = new IncrementalDetokenizer(tokenizer, prompt, { skipSpecialTokens: true });
  const r = generate(seq, prompt, {
    maxTokens,
    sampling,
    eosIds: config.eosIds,
    ignoreEos: o.ignoreEos,
    onToken: (id) => {
      const text = detok.push(id);
      if (text) process.stdout.write(text);
    },
  });
  const tail = detok.flush();
  if (tail) process.stdout.write(tail);
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
