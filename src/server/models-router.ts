// Several models behind one server (`serve -m a -m b`): each model has its own engine host (its
// own worker thread, KV pool and scheduler), and MultiEngine puts them behind the EngineClient
// interface the server already speaks. A request picks its engine by `model`; a request without
// one goes to the first model; an unknown name is a 404 naming the served ones.
//
// As an EngineClient, MultiEngine stands for the whole set where the server asks about all of it
// (stats summed for /metrics, shutdown of every engine) and for the first model where a single
// answer is needed (modelName, tokenizer calls); the routes that know the request's model ask
// `route(name)` for that model's own engine.

import { EngineError, type ChatTurn, type EngineClient, type EngineStats, type GenerateRequest, type TokenEvent, type ToolTemplateSupport } from '../engine/api.ts';
import { ApiError, badRequest } from './errors.ts';
import { checkModel, type Body } from './validate.ts';

export class MultiEngine implements EngineClient {
  private readonly byName = new Map<string, EngineClient>();

  constructor(readonly engines: readonly EngineClient[]) {
    if (engines.length === 0) throw new Error('MultiEngine: no engines');
    for (const e of engines) {
      if (this.byName.has(e.modelName)) {
        throw new EngineError('bad_request', `two models are served as '${e.modelName}'; give each its own name (--model NAME=MODEL)`);
      }
      this.byName.set(e.modelName, e);
    }
  }

  /** The served names, in the order given. */
  get names(): string[] {
    return this.engines.map((e) => e.modelName);
  }

  /** The engine serving `model` (the first one when no model is named); a 404 ApiError for an unknown name. */
  route(model: string | undefined): EngineClient {
    if (model === undefined) return this.engines[0]!;
    const e = this.byName.get(model);
    if (!e) throw new ApiError(404, `the model '${model}' does not exist; this server serves ${this.names.map((n) => `'${n}'`).join(', ')}`, 'model', 'model_not_found');
    return e;
  }

  get modelName(): string {
    return this.engines[0]!.modelName;
  }

  /** The longest context of the set (each model's own is in its /v1/models card). */
  get maxContext(): number {
    return Math.max(...this.engines.map((e) => e.maxContext));
  }

  /** Requests go to the first model here; the server routes by name through route(). */
  submit(req: GenerateRequest, onEvents: (events: TokenEvent[]) => void): Promise<void> {
    return this.engines[0]!.submit(req, onEvents);
  }

  /** Request ids are unique across the server, so an abort can go to every engine. */
  abort(requestId: string): void {
    for (const e of this.engines) e.abort(requestId);
  }

  stats(): EngineStats {
    const all = this.engines.map((e) => e.stats());
    const sum = (k: keyof EngineStats) => all.reduce((a, s) => a + s[k], 0);
    const prompt = sum('promptTokens');
    return {
      running: sum('running'),
      waiting: sum('waiting'),
      kvBlocksUsed: sum('kvBlocksUsed'),
      kvBlocksTotal: sum('kvBlocksTotal'),
      // weighted by each engine's prompt tokens
      prefixCacheHitRate: prompt > 0 ? all.reduce((a, s) => a + s.prefixCacheHitRate * s.promptTokens, 0) / prompt : 0,
      preemptions: sum('preemptions'),
      promptTokens: prompt,
      generationTokens: sum('generationTokens'),
    };
  }

  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.engines[0]!.encode(text, addSpecialTokens);
  }

  decode(ids: number[]): string {
    return this.engines[0]!.decode(ids);
  }

  applyChatTemplate(messages: ChatTurn[], addGenerationPrompt: boolean, opts?: { tools?: unknown[] }): string {
    return this.engines[0]!.applyChatTemplate(messages, addGenerationPrompt, opts);
  }

  toolSupport(): ToolTemplateSupport {
    return this.engines[0]!.toolSupport?.() ?? { tools: false, format: null };
  }

  async shutdown(graceMs: number): Promise<void> {
    await Promise.all(this.engines.map((e) => e.shutdown(graceMs)));
  }
}

/** The engine and served name a request's `model` picks: routed under a MultiEngine, else the one model (404 for another name). */
export function servedFor(engine: EngineClient, servedName: string, b: Body): { engine: EngineClient; modelName: string } {
  if (!(engine instanceof MultiEngine)) {
    checkModel(b, servedName);
    return { engine, modelName: servedName };
  }
  if (b.model !== undefined && typeof b.model !== 'string') throw badRequest(`'model' must be a string`, 'model', 'invalid_type');
  const e = engine.route(b.model as string | undefined);
  return { engine: e, modelName: e.modelName };
}

/** The models a server offers, for /v1/models: every engine of a MultiEngine, else the one. */
export function servedModels(engine: EngineClient, servedName: string): { name: string; maxContext: number }[] {
  if (engine instanceof MultiEngine) return engine.engines.map((e) => ({ name: e.modelName, maxContext: e.maxContext }));
  return [{ name: servedName, maxContext: engine.maxContext }];
}
