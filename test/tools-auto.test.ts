// tool_choice 'auto' through the server: what a model writes in its family's call syntax comes
// back as tool_calls (collected and streamed), text around calls stays content, and text that
// only looks like a call is content. A scripted engine stands in for the model: it "generates"
// the last user message, a few characters per step, so each test chooses the model's answer.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionTool } from 'openai/resources/chat/completions';
import type { ChatTurn, EngineClient, EngineStats, GenerateRequest, TokenEvent, ToolTemplateSupport } from '../src/engine/api.ts';
import { buildServer } from '../src/server/app.ts';
import { MultiEngine } from '../src/server/models-router.ts';

/** Answers with the last message's text (code points as tokens), `step` characters per event. */
class ScriptedEngine implements EngineClient {
  readonly maxContext = 100_000;
  /** What the last request rendered: the messages and tools the template was given. */
  lastRender?: { messages: ChatTurn[]; tools?: unknown[] };
  constructor(
    readonly modelName: string,
    private readonly format: ToolTemplateSupport['format'],
    private readonly step = 3,
  ) {}
  toolSupport(): ToolTemplateSupport {
    return { tools: true, format: this.format };
  }
  encode(text: string): number[] {
    return Array.from(text, (c) => c.codePointAt(0)!);
  }
  decode(ids: number[]): string {
    return ids.map((i) => String.fromCodePoint(i)).join('');
  }
  applyChatTemplate(messages: ChatTurn[], _agp: boolean, opts?: { tools?: unknown[] }): string {
    this.lastRender = { messages, tools: opts?.tools };
    return messages.at(-1)!.content;
  }
  async submit(req: GenerateRequest, onEvents: (events: TokenEvent[]) => void): Promise<void> {
    const script = [...this.decode(req.promptIds)];
    const max = req.sampling.maxTokens;
    let pos = 0;
    const tick = () => {
      const end = Math.min(pos + this.step, script.length, max);
      const text = script.slice(pos, end).join('');
      pos = end;
      const finishReason = pos >= script.length ? 'stop' : pos >= max ? 'length' : undefined;
      onEvents([{ requestId: req.id, index: 0, tokenId: 1, text, ...(finishReason ? { finishReason, completionTokens: pos } : {}) }]);
      if (!finishReason) setImmediate(tick);
    };
    setImmediate(tick);
  }
  abort(): void {}
  stats(): EngineStats {
    return { running: 0, waiting: 0, kvBlocksUsed: 0, kvBlocksTotal: 1, prefixCacheHitRate: 0, preemptions: 0, promptTokens: 0, generationTokens: 0 };
  }
  async shutdown(): Promise<void> {}
}

const TOOLS: ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

const engines = { hermes: new ScriptedEngine('hermes', 'hermes'), llama: new ScriptedEngine('llama', 'llama3', 2), mistral: new ScriptedEngine('mistral', 'mistral', 5) };
let app: FastifyInstance, client: OpenAI, url: string;

before(async () => {
  app = buildServer(new MultiEngine(Object.values(engines)));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
});
after(async () => {
  await app?.close();
});

/** The model writes `answer`: the collected response and the streamed one, reassembled by the client. */
async function both(model: string, answer: string, extra: object = {}) {
  const body = { model, messages: [{ role: 'user' as const, content: answer }], tools: TOOLS, ...extra };
  const collected = await client.chat.completions.create(body);
  const chunks: ChatCompletionChunk[] = [];
  const stream = client.chat.completions.stream(body);
  stream.on('chunk', (c) => chunks.push(c));
  const streamed = await stream.finalChatCompletion();
  return { collected: collected.choices[0]!, streamed: streamed.choices[0]!, chunks };
}

function calls(m: { tool_calls?: unknown[] | null }): { name: string; args: unknown }[] {
  return ((m.tool_calls ?? []) as { function: { name: string; arguments: string } }[]).map((t) => ({ name: t.function.name, args: JSON.parse(t.function.arguments) }));
}

describe("tool_choice 'auto': the model's own call syntax", () => {
  it('Hermes: content, then two calls; collected and streamed agree', async () => {
    const answer = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>';
    const { collected, streamed, chunks } = await both('hermes', answer);
    for (const c of [collected, streamed]) {
      assert.equal(c.finish_reason, 'tool_calls');
      assert.equal(c.message.content, 'Let me look.');
      assert.deepEqual(calls(c.message), [{ name: 'get_weather', args: { city: 'Paris' } }, { name: 'get_time', args: { tz: 'CET' } }]);
      const ids = c.message.tool_calls!.map((t) => t.id);
      assert.equal(new Set(ids).size, 2);
      for (const id of ids) assert.match(id, /^call_[a-zA-Z0-9]{24}$/);
    }
    // no piece of the call syntax leaks into streamed content
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(content, 'Let me look.');
    const opens = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).filter((d) => d.id);
    assert.deepEqual(opens.map((d) => [d.index, d.type, d.function?.name, d.function?.arguments]), [[0, 'function', 'get_weather', ''], [1, 'function', 'get_time', '']]);
  });

  it('Llama 3: a JSON call as the whole answer; Mistral: [TOOL_CALLS] and a list', async () => {
    const l = await both('llama', '{"name": "get_time", "parameters": {"tz": "UTC"}}');
    for (const c of [l.collected, l.streamed]) {
      assert.equal(c.finish_reason, 'tool_calls');
      assert.equal(c.message.content, null);
      assert.deepEqual(calls(c.message), [{ name: 'get_time', args: { tz: 'UTC' } }]);
    }
    const m = await both('mistral', '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome"}}, {"name": "get_time", "arguments": {}}]');
    for (const c of [m.collected, m.streamed]) {
      assert.equal(c.finish_reason, 'tool_calls');
      assert.deepEqual(calls(c.message), [{ name: 'get_weather', args: { city: 'Rome' } }, { name: 'get_time', args: {} }]);
    }
  });

  it('text that is not a call stays content, streamed as it comes once it cannot be a call', async () => {
    for (const [model, answer] of [
      ['hermes', 'a < b, and <tool_calls> are XML-ish'],
      ['llama', 'The JSON {"name": "x"} is an example.'],
      ['llama', '{"name": "Bob", "age": 3}'],
      ['mistral', '[1, 2, 3] is a list'],
    ] as const) {
      const { collected, streamed, chunks } = await both(model, answer);
      for (const c of [collected, streamed]) {
        assert.equal(c.finish_reason, 'stop', answer);
        assert.equal(c.message.content, answer);
        assert.ok(!c.message.tool_calls?.length, answer);
      }
      if (model !== 'mistral' && !answer.startsWith('{')) assert.ok(chunks.filter((c) => c.choices[0]?.delta.content).length > 3, `${answer}: content streams in pieces`);
    }
  });

  it('a call cut short by max_tokens ends with finish_reason length', async () => {
    const { collected } = await both('hermes', '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', { max_tokens: 60 });
    assert.equal(collected.finish_reason, 'length');
    assert.equal((collected.message.tool_calls?.[0] as { function: { name: string } } | undefined)?.function.name, 'get_weather');
  });

  it("tool_choice 'none' leaves the answer as content; the template still sees the tools", async () => {
    const answer = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
    const { collected, streamed } = await both('hermes', answer, { tool_choice: 'none' });
    for (const c of [collected, streamed]) {
      assert.equal(c.finish_reason, 'stop');
      assert.equal(c.message.content, answer);
    }
    assert.deepEqual((engines.hermes.lastRender!.tools as { function: { name: string } }[]).map((t) => t.function.name), ['get_weather', 'get_time']);
  });

  it('tool turns reach the template: arguments as objects, Mistral ids cut to 9 characters', async () => {
    const history = [
      { role: 'user' as const, content: 'weather?' },
      { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_abcdefghijklmnopqrstuvwx', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city": "Oslo"}' } }] },
      { role: 'tool' as const, tool_call_id: 'call_abcdefghijklmnopqrstuvwx', content: '{"temp": 3}' },
      { role: 'user' as const, content: 'thanks' },
    ];
    for (const [model, id] of [['hermes', 'call_abcdefghijklmnopqrstuvwx'], ['mistral', 'pqrstuvwx']] as const) {
      await client.chat.completions.create({ model, messages: history, tools: TOOLS });
      const [, asst, tool] = engines[model].lastRender!.messages;
      assert.deepEqual(asst!.tool_calls, [{ id, type: 'function', function: { name: 'get_weather', arguments: { city: 'Oslo' } } }]);
      assert.equal(asst!.content, '');
      assert.equal(tool!.tool_call_id, id);
    }
    // /tokenize renders the same prompt, tools included
    const res = await fetch(`${url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mistral', messages: history, tools: TOOLS }) });
    assert.equal(res.status, 200);
    assert.equal((engines.mistral.lastRender!.messages[1]!.tool_calls as { id: string }[])[0]!.id, 'pqrstuvwx');
    assert.equal(engines.mistral.lastRender!.tools?.length, 2);
  });
});
