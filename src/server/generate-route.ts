// POST /v1/completions and /v1/chat/completions: one request's life from the engine's events to
// OpenAI's response shapes, streamed (SSE) or collected. A client that goes away, mid-stream or
// while waiting for a collected answer, has its request aborted in the engine at once.

import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { EngineClient, FinishReason, GenerateRequest, TokenEvent, TopLogprob } from '../engine/api.ts';
import { toApiError } from './errors.ts';
import type { ServerMetrics } from './metrics.ts';
import { noteGeneration } from './request-log.ts';
import { SseStream } from './sse.ts';
import { ToolCallParser, type ToolDelta } from './tools.ts';
import { parseChat, parseCompletion, type Body, type ParsedGenerate } from './validate.ts';

export type Kind = 'completion' | 'chat';

export interface GenerateContext {
  engine: EngineClient;
  metrics: ServerMetrics;
  modelName: string;
}

interface ChoiceState {
  text: string;
  finish?: FinishReason;
  tokens: number;
  /** Completion tokens as counted by the engine, from the final event. */
  engineTokens?: number;
  lastTokenAt?: number;
  logprobs: { tokenId: number; token: string; logprob: number; top: TopLogprob[] }[];
  /** Chat with tools: the answer's calls, parsed as it grows. */
  tools?: ToolCallParser;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** Validates, submits, and answers one generation request. */
export async function handleGenerate(kind: Kind, body: Body, reply: FastifyReply, ctx: GenerateContext): Promise<unknown> {
  const { engine, metrics } = ctx;
  const parsed = kind === 'chat' ? parseChat(body, engine, ctx.modelName) : parseCompletion(body, engine);
  const t0 = performance.now();
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const object = kind === 'chat' ? (parsed.stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
  const head = { id, object, created, model: ctx.modelName };
  const n = parsed.sampling.n;
  const toolFormat = parsed.toolFormat;
  const choices: ChoiceState[] = Array.from({ length: n }, () => ({ text: '', tokens: 0, logprobs: [], ...(toolFormat ? { tools: new ToolCallParser(toolFormat) } : {}) }));
  const wantLogprobs = parsed.sampling.logprobs !== undefined;
  let promptTokens = parsed.promptIds.length;
  let cachedTokens: number | undefined;
  let firstTokenAt: number | undefined;
  let settled = false;
  let clientGone = false;
  const res = reply.raw;
  const sse = parsed.stream ? new SseStream(res) : undefined;
  if (sse) reply.hijack(); // the SSE stream writes the raw response itself

  const usage = (): Usage => {
    const completion = choices.reduce((a, c) => a + (c.engineTokens ?? c.tokens), 0);
    const u: Usage = { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
    if (cachedTokens !== undefined) u.prompt_tokens_details = { cached_tokens: cachedTokens };
    return u;
  };

  // Stream-side: the first chat chunk of each choice carries the assistant role.
  const openStream = () => {
    if (!sse || sse.isOpen) return;
    sse.open();
    if (kind === 'chat') {
      for (let i = 0; i < n; i++) sse.send(withUsage(parsed, { ...head, choices: [{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }));
    }
  };

  const streamEvent = (ev: TokenEvent, lp: ChoiceState['logprobs'][number] | undefined, offset: number) => {
    if (!sse) return;
    const parser = choices[ev.index]?.tools;
    if (parser) return streamToolEvent(ev, lp, parser);
    if (ev.text === '' && !ev.finishReason && !lp) return; // nothing a client could see
    const finish_reason = ev.finishReason ?? null;
    const choice =
      kind === 'chat'
        ? { index: ev.index, delta: ev.text === '' && finish_reason ? {} : { content: ev.text }, logprobs: lp ? chatLogprobs([lp]) : null, finish_reason }
        : { index: ev.index, text: ev.text, logprobs: lp ? completionLogprobs([lp], offset) : null, finish_reason };
    sse.send(withUsage(parsed, { ...head, choices: [choice] }));
  };

  // With tools, text goes through the choice's parser: content, a call's opening (index, id,
  // type, name, arguments '') and its argument pieces each become a chunk, as OpenAI sends them.
  const streamToolEvent = (ev: TokenEvent, lp: ChoiceState['logprobs'][number] | undefined, parser: ToolCallParser) => {
    const deltas: ToolDelta[] = parser.push(ev.text);
    if (ev.finishReason) deltas.push(...parser.finish());
    let logprobs = lp ? chatLogprobs([lp]) : null;
    const send = (delta: Record<string, unknown>, finish_reason: string | null) => {
      sse!.send(withUsage(parsed, { ...head, choices: [{ index: ev.index, delta, logprobs, finish_reason }] }));
      logprobs = null;
    };
    for (const d of deltas) {
      if (d.kind === 'content') send({ content: d.text }, null);
      else if (d.kind === 'call') send({ tool_calls: [{ index: d.index, id: d.id, type: 'function', function: { name: d.name, arguments: '' } }] }, null);
      else if (d.text !== '') send({ tool_calls: [{ index: d.index, function: { arguments: d.text } }] }, null);
    }
    if (ev.finishReason) send({}, finishReasonOf(ev.finishReason, parser));
    else if (logprobs) send({}, null); // held-back text: its logprobs still go out
  };

  const done = new Promise<void>((resolve, reject) => {
    const finish = (reason: string, err?: unknown) => {
      if (settled) return;
      settled = true;
      res.off('close', onClose);
      metrics.requests.inc({ finish_reason: reason });
      noteGeneration(res, { model: ctx.modelName, promptTokens, outputTokens: usage().completion_tokens, firstTokenAt, finishReason: reason });
      if (reason !== 'abort' && reason !== 'error') metrics.e2e.observe((performance.now() - t0) / 1000);
      if (err !== undefined) reject(err);
      else resolve();
    };
    // 'close' after the response finished is normal; before it, the client went away.
    const onClose = () => {
      if (settled || res.writableFinished) return;
      clientGone = true;
      engine.abort(id);
      finish('abort');
    };
    res.on('close', onClose);

    const onEvents = (events: TokenEvent[]) => {
      if (settled) return;
      openStream();
      const now = performance.now();
      for (const ev of events) {
        const c = choices[ev.index];
        if (!c || c.finish) continue; // an index the engine should not send; ignore rather than crash
        if (ev.promptTokens !== undefined) promptTokens = ev.promptTokens;
        if (ev.cachedTokens !== undefined) cachedTokens = ev.cachedTokens;
        let lp: ChoiceState['logprobs'][number] | undefined;
        const offset = c.text.length;
        if (ev.tokenId >= 0) {
          c.tokens++;
          if (firstTokenAt === undefined) {
            firstTokenAt = now;
            metrics.ttft.observe((now - t0) / 1000);
          }
          if (c.lastTokenAt !== undefined) metrics.itl.observe((now - c.lastTokenAt) / 1000);
          c.lastTokenAt = now;
          if (wantLogprobs && ev.logprob !== undefined) {
            lp = { tokenId: ev.tokenId, token: tokenText(engine, ev.tokenId), logprob: ev.logprob, top: ev.topLogprobs ?? [] };
            c.logprobs.push(lp);
          }
        }
        c.text += ev.text;
        if (ev.finishReason) {
          c.finish = ev.finishReason;
          if (ev.completionTokens !== undefined) c.engineTokens = ev.completionTokens;
        }
        streamEvent(ev, lp, offset);
      }
      if (choices.every((c) => c.finish)) finish(choices[0]!.finish!);
    };

    const req: GenerateRequest = { id, promptIds: parsed.promptIds, sampling: parsed.sampling };
    let submitted: Promise<void>;
    try {
      submitted = engine.submit(req, onEvents);
    } catch (e) {
      submitted = Promise.reject(e);
    }
    submitted.then(
      () => {
        if (!settled) openStream();
      },
      (e: unknown) => {
        // An engine error is a refusal (429/503/400) before any event, or a failure later on.
        const api = toApiError(e, parsed.promptParam);
        finish(api.status >= 500 ? 'error' : 'rejected', e);
      },
    );
  });

  if (sse) {
    try {
      await done;
      if (!clientGone) {
        if (parsed.includeUsage) sse.send({ ...head, choices: [], usage: usage() });
        sse.done();
      }
    } catch (e) {
      sse.fail(toApiError(e, parsed.promptParam));
    }
    return undefined;
  }

  try {
    await done;
  } catch (e) {
    throw toApiError(e, parsed.promptParam);
  }
  if (clientGone) {
    reply.hijack(); // nobody to answer
    return undefined;
  }
  return {
    ...head,
    choices: choices.map((c, index) =>
      kind === 'chat'
        ? { index, message: chatMessage(c), logprobs: parsed.chatLogprobs ? chatLogprobs(c.logprobs) : null, finish_reason: finishReasonOf(c.finish!, c.tools) }
        : { index, text: c.text, logprobs: wantLogprobs ? completionLogprobs(c.logprobs, 0) : null, finish_reason: c.finish },
    ),
    usage: usage(),
  };
}

/** A choice that called tools ends with 'tool_calls' (unless it was cut short: 'length', 'abort'). */
function finishReasonOf(reason: FinishReason, parser: ToolCallParser | undefined): string {
  return reason === 'stop' && parser && parser.calls.length > 0 ? 'tool_calls' : reason;
}

/** The assistant message of a collected chat answer: content, and tool_calls when it made any. */
function chatMessage(c: ChoiceState): Record<string, unknown> {
  if (!c.tools) return { role: 'assistant', content: c.text };
  const p = c.tools; // collected (not streamed): it has seen nothing yet
  p.push(c.text);
  p.finish();
  if (p.calls.length === 0) return { role: 'assistant', content: c.text };
  return {
    role: 'assistant',
    content: p.content === '' ? null : p.content,
    tool_calls: p.calls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } })),
  };
}

/** With stream_options.include_usage, OpenAI sends `usage: null` on every chunk but the last. */
function withUsage(p: ParsedGenerate, chunk: Record<string, unknown>): Record<string, unknown> {
  return p.includeUsage ? { ...chunk, usage: null } : chunk;
}

function tokenText(engine: EngineClient, id: number): string {
  try {
    return engine.decode([id]);
  } catch {
    return '';
  }
}

const utf8 = new TextEncoder();

function chatLogprobs(entries: ChoiceState['logprobs']) {
  return {
    content: entries.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: [...utf8.encode(e.token)],
      top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: [...utf8.encode(t.token)] })),
    })),
  };
}

/** The legacy completions shape; text offsets count from `start` (the choice's text so far). */
function completionLogprobs(entries: ChoiceState['logprobs'], start: number) {
  const text_offset: number[] = [];
  let off = start;
  for (const e of entries) {
    text_offset.push(off);
    off += e.token.length;
  }
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [t.token, t.logprob]))),
    text_offset,
  };
}
