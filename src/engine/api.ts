// The serving engine's contract, kept small (JetStream's engine_api spirit): the server hands
// the engine tokenized requests and reads back events; everything else (scheduling, KV blocks,
// prefix cache, sampling, detokenization, stop strings) is the engine's business.
//
// The server side (src/server/) depends only on this file, so it can be tested against a fake
// engine and run against the real one (src/engine/engine.ts, hosted in a worker thread by
// src/engine/worker-host.ts) unchanged.

/** Per-request sampling and stopping (the server validates them at the edge; the engine checks again). */
import type { ConstraintSpec } from '../structured/index.ts';

export interface SamplingOptions {
  /** 0: greedy. */
  temperature: number;
  topP: number; //                 1: off
  topK: number; //                 0: off
  minP: number; //                 0: off
  repetitionPenalty: number; //    1: off (HF/vLLM semantics: logits of seen tokens divided / multiplied)
  presencePenalty: number; //      0: off (OpenAI semantics)
  frequencyPenalty: number; //     0: off
  /** Reproducible sampling when set. */
  seed?: number;
  /** Tokens to generate at most (per choice). */
  maxTokens: number;
  /** Stop strings: generation ends before the first occurrence; the text never includes it. */
  stop: string[];
  /** Extra stop token ids (besides the model's EOS unless ignoreEos). */
  stopTokenIds: number[];
  ignoreEos: boolean;
  /** Log-probabilities: undefined = none; k >= 0 = the chosen token's logprob plus the top k alternatives. */
  logprobs?: number;
  /** Choices per request (share the prompt's KV blocks). */
  n: number;
  /**
   * Structured output: the text must fit this constraint (a JSON schema, any JSON object, a
   * regex, a choice of strings or a GBNF grammar). Tokens that cannot continue a valid output are
   * masked before sampling, and the choice ends ('stop') when the output is complete.
   */
  constraint?: ConstraintSpec;
}

/** A chat message for the template: role and text, plus tool fields passed through as they are. */
export interface ChatTurn {
  role: string;
  content: string;
  [extra: string]: unknown;
}

/** A chat template's tool support (src/formats/chat-template.ts templateToolSupport). */
export interface ToolTemplateSupport {
  tools: boolean;
  format: 'hermes' | 'llama3' | 'mistral' | null;
}

export interface GenerateRequest {
  /** Unique per request (the server makes it). */
  id: string;
  promptIds: number[];
  sampling: SamplingOptions;
}

export interface TopLogprob {
  id: number;
  token: string;
  logprob: number;
}

export type FinishReason = 'stop' | 'length' | 'abort';

/** One step's output for one choice of one request. */
export interface TokenEvent {
  requestId: string;
  /** Choice index, 0 .. n-1. */
  index: number;
  /** The token sampled this step (-1 on a final event that carries no new token, e.g. abort). */
  tokenId: number;
  /** Newly completed text (UTF-8 safe; may be ''; stop strings already cut out). */
  text: string;
  logprob?: number;
  topLogprobs?: TopLogprob[];
  /** Set on the choice's last event. */
  finishReason?: FinishReason;
  /** Token counts, on the last event of the choice. */
  promptTokens?: number;
  completionTokens?: number;
  /** Prompt tokens served from the prefix cache (on the first event). */
  cachedTokens?: number;
  /** Set (with finishReason 'abort') when the request failed inside the engine: the server answers 500. */
  error?: string;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  /** Prefix-cache hit rate over all prompt tokens so far (0..1). */
  prefixCacheHitRate: number;
  preemptions: number;
  promptTokens: number;
  generationTokens: number;
}

export type EngineErrorCode = 'queue_full' | 'context_length' | 'shutting_down' | 'bad_request' | 'internal';

export class EngineError extends Error {
  override name = 'EngineError';
  constructor(
    readonly code: EngineErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What the server talks to. Implemented by the engine host (worker thread) and by test fakes. */
export interface EngineClient {
  readonly modelName: string;
  /** Context length: prompt + max tokens must fit. */
  readonly maxContext: number;
  /**
   * Starts a request. Rejects with an EngineError ('queue_full', 'context_length', 'shutting_down',
   * 'bad_request' or 'internal') before any event; then `onEvents` receives each step's events for
   * this request (in order) until every choice has had its finishReason.
   */
  submit(req: GenerateRequest, onEvents: (events: TokenEvent[]) => void): Promise<void>;
  /** Cancels a request (client gone, stop string seen elsewhere): its KV blocks are freed at once. */
  abort(requestId: string): void;
  stats(): EngineStats;
  /** Tokenizer access for the server (chat templates, /tokenize, /detokenize). */
  encode(text: string, addSpecialTokens: boolean): number[];
  decode(ids: number[]): string;
  /**
   * The chat template applied to messages, or an EngineError('bad_request') naming the problem.
   * `opts.tools` (OpenAI's tools list) is passed to the template as its `tools` variable.
   */
  applyChatTemplate(messages: ChatTurn[], addGenerationPrompt: boolean, opts?: { tools?: unknown[] }): string;
  /** What the chat template does with tools (absent: no tool support). */
  toolSupport?(): ToolTemplateSupport;
  /** Stops accepting requests; resolves when in-flight ones have finished or the grace period ends. */
  shutdown(graceMs: number): Promise<void>;
}
