// Tool calling, below the server: which templates support tools and in which call syntax; tool
// turns rendered through the three families' real templates and parsed back; the incremental
// parser of calls (whole or in pieces, content around calls, text that is not a call); and the
// tool_calls constraint that forced calls decode under (exactly the family's syntax, arguments
// that validate).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import { applyChatTemplate, templateToolSupport } from '../src/formats/chat-template.ts';
import { matcherFor, SchemaError, specRules, type ToolCallFormat, type ToolCallSpec } from '../src/structured/index.ts';
import { messagesForTemplate, mistralCallId, newCallId, parseMessageToolCalls, ToolCallParser, type ToolDelta } from '../src/server/tools.ts';
import { LLAMA32_TOOLS, MISTRAL_V03_TOOLS, QWEN25_TOOLS } from './helpers/tool-templates.ts';

const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false });

const WEATHER = { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { type: 'string', enum: ['C', 'F'] } }, required: ['city', 'unit'], additionalProperties: false };
const TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: WEATHER } }];

/** Parse `text` fed in pieces of `size` characters; returns the parser and every delta. */
function parse(format: ToolCallFormat, text: string, size = Infinity): { p: ToolCallParser; deltas: ToolDelta[] } {
  let n = 0;
  const p = new ToolCallParser(format, () => `call_${n++}`);
  const deltas: ToolDelta[] = [];
  const step = Number.isFinite(size) ? size : text.length || 1;
  for (let i = 0; i < text.length; i += step) deltas.push(...p.push(text.slice(i, i + step)));
  deltas.push(...p.finish());
  return { p, deltas };
}

/** What a streaming client rebuilds from the deltas. */
function reassemble(deltas: ToolDelta[]): { content: string; calls: { id: string; name: string; arguments: string }[] } {
  let content = '';
  const calls: { id: string; name: string; arguments: string }[] = [];
  for (const d of deltas) {
    if (d.kind === 'content') content += d.text;
    else if (d.kind === 'call') calls[d.index] = { id: d.id, name: d.name, arguments: '' };
    else calls[d.index]!.arguments += d.text;
  }
  return { content, calls };
}

/** Parsed whole and in every piece size from 1 to 7 and the deltas agree with the whole parse. */
function parseAll(format: ToolCallFormat, text: string): { content: string; calls: { name: string; args: unknown }[] } {
  const whole = parse(format, text).p;
  for (let size = 1; size <= 7; size++) {
    const r = reassemble(parse(format, text, size).deltas);
    assert.equal(r.content, whole.content, `content in pieces of ${size}: ${JSON.stringify(text)}`);
    assert.deepEqual(r.calls, whole.calls, `calls in pieces of ${size}: ${JSON.stringify(text)}`);
  }
  return { content: whole.content, calls: whole.calls.map((c) => ({ name: c.name, args: JSON.parse(c.arguments) })) };
}

describe('tool calling: templates', () => {
  it('tells tool support and the call syntax from the template text', () => {
    assert.deepEqual(templateToolSupport(QWEN25_TOOLS), { tools: true, format: 'hermes' });
    assert.deepEqual(templateToolSupport(LLAMA32_TOOLS), { tools: true, format: 'llama3' });
    assert.deepEqual(templateToolSupport(MISTRAL_V03_TOOLS), { tools: true, format: 'mistral' });
    assert.deepEqual(templateToolSupport("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"), { tools: false, format: null });
    assert.deepEqual(templateToolSupport('{% if tools %}{{ tools | tojson }}{% endif %}{{ messages[0].content }}'), { tools: true, format: null });
    assert.deepEqual(templateToolSupport(null), { tools: false, format: null });
  });

  const call = { id: 'call_abcdefghijklmnopqrstuvwx', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "C"}' } };
  const conversation = [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: '', tool_calls: parseMessageToolCalls([call], 'messages[1]') },
    { role: 'tool', content: '{"temp": 21}', tool_call_id: call.id },
  ];
  // The assistant turn of each template's rendering, cut out by the family's turn markers.
  const cases: [string, string, ToolCallFormat, (s: string) => string][] = [
    ['Qwen2.5', QWEN25_TOOLS, 'hermes', (s) => s.split('<|im_start|>assistant')[1]!.split('<|im_end|>')[0]!],
    ['Llama 3.2', LLAMA32_TOOLS, 'llama3', (s) => s.split('<|start_header_id|>assistant<|end_header_id|>\n\n')[1]!.split('<|eot_id|>')[0]!],
    ['Mistral v0.3', MISTRAL_V03_TOOLS, 'mistral', (s) => s.split('[/INST]')[1]!.split('</s>')[0]!],
  ];
  for (const [family, template, format, assistantTurn] of cases) {
    it(`${family}: tools, an assistant tool call and its result render, and the call parses back`, () => {
      const text = applyChatTemplate(template, messagesForTemplate(conversation, format), { addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>', extra: { tools: TOOLS } });
      assert.ok(text.includes('"get_weather"') && text.includes('Weather in a city'), 'the tools reach the prompt');
      assert.ok(text.includes('21'), 'the tool result reaches the prompt');
      assert.ok(!text.includes('"{\\"city'), 'arguments render as an object, not a quoted string');
      const turn = assistantTurn(text);
      const { content, calls } = parseAll(format, turn);
      assert.equal(content, '');
      assert.deepEqual(calls, [{ name: 'get_weather', args: { city: 'Paris', unit: 'C' } }]);
    });
  }

  it('Mistral: call ids become the 9 alphanumeric characters its template insists on', () => {
    assert.equal(mistralCallId('call_abcdefghijklmnopqrstuvwx'), 'pqrstuvwx');
    assert.match(mistralCallId(newCallId()), /^[a-zA-Z0-9]{9}$/);
    assert.match(newCallId(), /^call_[a-zA-Z0-9]{24}$/);
    const text = applyChatTemplate(MISTRAL_V03_TOOLS, messagesForTemplate(conversation, 'mistral'), { bosToken: '<s>', eosToken: '</s>', extra: { tools: TOOLS } });
    assert.match(text, /"id": "pqrstuvwx"\}\]<\/s>\[TOOL_RESULTS\] \{"content": \{"temp": 21\}, "call_id": "pqrstuvwx"\}/);
  });
});

describe('tool calling: parsing the answer', () => {
  it('Hermes: content before calls, several calls, whitespace between them dropped', () => {
    const text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "Europe/Paris", "nested": {"a": [1, {"b": "}"}]}}}\n</tool_call>\n';
    const r = parseAll('hermes', text);
    assert.equal(r.content, 'Let me check.');
    assert.deepEqual(r.calls, [
      { name: 'get_weather', args: { city: 'Paris', unit: 'C' } },
      { name: 'get_time', args: { tz: 'Europe/Paris', nested: { a: [1, { b: '}' }] } } },
    ]);
  });

  it('Hermes: text that only looks like the start of a call stays content', () => {
    for (const text of ['a <tool_cal', 'x <tool_call> not json', '<tool_call>\n{"nome": "f"}\n</tool_call>', 'use <tool_call> tags', '   ']) {
      const r = parseAll('hermes', text);
      assert.deepEqual(r.calls, [], text);
      assert.equal(r.content, text, text);
    }
  });

  it('Llama 3: the whole answer as a call, after <|python_tag|> or not, several after ";"', () => {
    assert.deepEqual(parseAll('llama3', '{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "F"}}').calls, [{ name: 'get_weather', args: { city: 'Oslo', unit: 'F' } }]);
    assert.deepEqual(parseAll('llama3', '<|python_tag|>{"name":"f","arguments":{}}').calls, [{ name: 'f', args: {} }]);
    const two = parseAll('llama3', ' {"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {"y": "2"}}');
    assert.deepEqual(two.calls, [{ name: 'a', args: { x: 1 } }, { name: 'b', args: { y: '2' } }]);
    assert.equal(two.content, '');
    for (const text of ['The answer is {"name": "f", "parameters": {}}', '{"nome": 1}', '{ "name": "f" }', '<b>bold</b>', 'Sure.']) {
      const r = parseAll('llama3', text);
      assert.deepEqual(r.calls, [], text);
      assert.equal(r.content, text, text);
    }
  });

  it('Mistral: [TOOL_CALLS] and a list of calls, or an answer that opens with the list', () => {
    const r = parseAll('mistral', '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome", "unit": "C"}}, {"name": "f", "arguments": {}}]');
    assert.deepEqual(r.calls, [{ name: 'get_weather', args: { city: 'Rome', unit: 'C' } }, { name: 'f', args: {} }]);
    assert.equal(r.content, '');
    assert.deepEqual(parseAll('mistral', '[{"name": "f", "arguments": {"a": "]"}}]').calls, [{ name: 'f', args: { a: ']' } }]);
    const after = parseAll('mistral', 'Checking. [TOOL_CALLS][{"name": "f", "arguments": {}}] done');
    assert.equal(after.content, 'Checking. done');
    for (const text of ['[1, 2]', '[link](x)', 'plain [TOOL_CALL']) assert.deepEqual(parseAll('mistral', text), { content: text, calls: [] });
  });

  it('calls in another key order or with extra keys are parsed whole', () => {
    // Hermes 2 Pro's prompt asks for {"arguments": ..., "name": ...}; small Llamas add "type"
    assert.deepEqual(parseAll('hermes', 'ok <tool_call>\n{"arguments": {"q": "x"}, "name": "search"}\n</tool_call>'), { content: 'ok', calls: [{ name: 'search', args: { q: 'x' } }] });
    assert.deepEqual(parseAll('llama3', '{"type": "function", "name": "f", "parameters": {"a": [1]}}').calls, [{ name: 'f', args: { a: [1] } }]);
    assert.deepEqual(parseAll('llama3', '<|python_tag|>{"name": "f", "arguments": "{\\"a\\": 2}"}').calls, [{ name: 'f', args: { a: 2 } }]);
    assert.deepEqual(parseAll('mistral', '[{"arguments": {}, "name": "f"}, {"name": "g", "arguments": {"b": null}}]').calls, [{ name: 'f', args: {} }, { name: 'g', args: { b: null } }]);
  });

  it('streams a call as OpenAI does: the opening once, then argument pieces', () => {
    const text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n</tool_call>';
    const { deltas } = parse('hermes', text, 3);
    const opens = deltas.filter((d) => d.kind === 'call');
    assert.deepEqual(opens, [{ kind: 'call', index: 0, id: 'call_0', name: 'get_weather' }]);
    const pieces = deltas.filter((d) => d.kind === 'args');
    assert.ok(pieces.length > 5, 'arguments arrive in pieces as they are generated');
    assert.equal(pieces.map((d) => (d as { text: string }).text).join(''), '{"city": "Paris", "unit": "C"}');
    assert.equal(deltas.filter((d) => d.kind === 'content').length, 0);
  });

  it('a call cut short keeps what the model wrote; an unfinished opening is content', () => {
    const { p } = parse('hermes', '<tool_call>\n{"name": "f", "arguments": {"a": "unfin');
    assert.deepEqual(p.calls.map((c) => [c.name, c.arguments]), [['f', '{"a": "unfin']]);
    const head = parse('hermes', 'hi <tool_call>\n{"name": "f", "argu').p;
    assert.deepEqual(head.calls, []);
    assert.equal(head.content, 'hi <tool_call>\n{"name": "f", "argu');
  });
});

describe('tool calling: the forced-call constraint', () => {
  const spec = (format: ToolCallFormat, parallel: boolean, tools: ToolCallSpec['tools'] = [{ name: 'get_weather', parameters: WEATHER }, { name: 'noop' }]): ToolCallSpec => ({ type: 'tool_calls', format, tools, parallel });
  const full = (s: ToolCallSpec, text: string) => {
    const m = matcherFor(s);
    return m.acceptString(text) && m.canTerminate();
  };

  it('admits exactly the family syntax around valid arguments, one or more calls', () => {
    const w = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}';
    assert.ok(full(spec('hermes', false), `<tool_call>\n${w}\n</tool_call>`));
    assert.ok(full(spec('hermes', true), `<tool_call>\n${w}\n</tool_call>\n<tool_call>\n{"name": "noop", "arguments": {}}\n</tool_call>`));
    assert.ok(!full(spec('hermes', false), `<tool_call>\n${w}\n</tool_call>\n<tool_call>\n${w}\n</tool_call>`), 'parallel off: one call');
    assert.ok(!full(spec('hermes', false), `<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>`), 'a required argument is missing');
    assert.ok(!full(spec('hermes', false), `<tool_call>\n{"name": "other", "arguments": {}}\n</tool_call>`), 'an unknown function');
    assert.ok(!full(spec('hermes', false), `<tool_call>\n{"name": "noop", "arguments": {"x": 1}}\n</tool_call>`), 'no parameters: only {}');
    assert.ok(full(spec('llama3', true), '{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "F"}}'));
    assert.ok(!full(spec('llama3', true), '{"name": "noop", "parameters": {}}; {"name": "noop", "parameters": {}}'), 'Llama: one call');
    assert.ok(full(spec('mistral', true), '[{"name": "noop", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "R", "unit": "C"}}]'));
  });

  it('keeps each schema\'s own $refs apart and names a bad keyword', () => {
    const withRef = { type: 'object', $defs: { u: { type: 'string', enum: ['x'] } }, properties: { u: { $ref: '#/$defs/u' } }, required: ['u'] };
    const withRef2 = { type: 'object', $defs: { u: { type: 'integer', minimum: 1, maximum: 3 } }, properties: { u: { $ref: '#/$defs/u' } }, required: ['u'] };
    const s = spec('hermes', false, [{ name: 'a', parameters: withRef }, { name: 'b', parameters: withRef2 }]);
    assert.ok(full(s, '<tool_call>\n{"name": "a", "arguments": {"u": "x"}}\n</tool_call>'));
    assert.ok(full(s, '<tool_call>\n{"name": "b", "arguments": {"u": 2}}\n</tool_call>'));
    assert.ok(!full(s, '<tool_call>\n{"name": "a", "arguments": {"u": 2}}\n</tool_call>'));
    assert.throws(() => specRules(spec('hermes', false, [{ name: 'a', parameters: { type: 'object', properties: { x: { oneOf: [] } } } }])), (e: unknown) => e instanceof SchemaError && /"oneOf" at #\/properties\/x/.test((e as Error).message));
  });

  it('every string the constraint admits parses back into calls whose arguments validate', () => {
    // random walks over the grammar's characters, picking uniformly among the allowed ones
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const alphabet = [...new Set([...'<tool_call>/{}[]":, \n0123456789abcdefghijklmnopqrstuvwxyzCFPRO_'])];
    for (const format of ['hermes', 'llama3', 'mistral'] as const) {
      const s = spec(format, true);
      let complete = 0;
      for (let walk = 0; walk < 20; walk++) {
        const m = matcherFor(s);
        let text = '';
        for (let i = 0; i < 400 && !(m.canTerminate() && rand() < 0.3); i++) {
          const ok = alphabet.filter((c) => m.clone().accept(c));
          if (!ok.length) break;
          const c = ok[Math.floor(rand() * ok.length)]!;
          m.accept(c);
          text += c;
        }
        if (!m.canTerminate()) continue;
        complete++;
        const { content, calls } = parseAll(format, text);
        assert.equal(content, '', text);
        assert.ok(calls.length >= 1, text);
        for (const c of calls) {
          assert.ok(c.name === 'get_weather' || c.name === 'noop', text);
          assert.ok(ajv.validate(c.name === 'get_weather' ? WEATHER : { type: 'object', additionalProperties: false }, c.args), `${text}: ${ajv.errorsText()}`);
        }
      }
      assert.ok(complete >= 10, `${format}: only ${complete} of 20 walks completed`);
    }
  });
});
