// Structured-output micro-benchmark: the cost of token masks for a typical 20-property object
// schema over synthetic-but-realistic vocabularies of 32k and 128k tokens (word pieces with and
// without a leading space, capitalized forms, digit groups, punctuation and JSON fragments,
// whitespace runs, common non-ASCII characters, and the 128 non-ASCII byte tokens of a
// byte-level BPE).
//
// Figures, per vocabulary:
//   vocab     building the token trie (once per model, at load)
//   compile   first request with a new schema: schema -> rules -> flat grammar -> start state
//   cold      per-step mask along a valid document on a fresh constraint: no transitions and
//             no masks cached (the first request with this schema); per step the best of 3
//             fresh runs, as for trans and warm
//   trans     a second, different document with the same schema: transitions memoized, masks
//             for the states it shares with the first document cached, others computed
//   warm      the first document again: every mask is a cache hit
//   naive     the peer: the same masks computed without the trie (each token's text run through
//             the matcher from the state), on the first 30 steps
//   apply     what a constrained token costs the engine: the mask plus applying it to a row of
//             V logits, along document A (cold: fresh constraint; warm: masks cached)
//   tools     compile of a forced tool call (tool_choice 'required', Hermes syntax) over 8 tools
//
// Then, with a TinyLlama-1.1B-shape model (random weights, q8_0; --model PATH, default
// bench/out/models/tinyllama-random-q8_0.gguf, made by `npm run bench:generate`), the decode step
// of the real engine at 16 concurrent streams, unconstrained and with every stream constrained by
// the schema (first run: cold caches; second: the same outputs, masks cached), and the mask cost
// of 16 streams at 32k and 128k vocabularies against that step (target: <= 10% overhead).
//
// Run: npm run bench:structured [-- --model PATH] [--streams 16] [--steps 8] [--threads 2]

import { existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { specRules, TokenConstraint, TokenVocabulary, GrammarEngine, DEAD, type ConstraintSpec } from '../src/structured/index.ts';
import { Engine } from '../src/engine/engine.ts';
import { loadModelSync } from '../src/models/load.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { lowerGrammar } from '../src/structured/grammar.ts';
import { mulberry32 } from '../recipes/default-model/corpus.ts';

/** Synthetic vocabulary of `size` distinct token texts; id 0 is EOS ('' text). */
function makeVocab(size: number, seed = 1): string[] {
  const r = mulberry32(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const out = new Set<string>();
  const add = (t: string) => {
    if (out.size < size - 1) out.add(t);
  };
  for (let c = 32; c < 127; c++) add(String.fromCharCode(c));
  for (const t of ['\n', '\t', '\r']) add(t);
  for (let c = 0xa1; c < 0x180; c++) add(String.fromCharCode(c));
  for (let c = 0x4e00; c < 0x4e00 + 400; c++) add(String.fromCharCode(c));
  for (let i = 0; i < 1000; i++) add(String(i)); // digit groups, as Llama 3 splits numbers
  for (let i = 0; i < 100; i++) add(String(i).padStart(2, '0'));
  for (let n = 2; n <= 16; n++) add(' '.repeat(n));
  for (let n = 0; n <= 12; n++) add('\n' + ' '.repeat(n));
  const frags = ['{"', '":', '": ', '":"', '": "', '","', '", "', '"}', '"},', '},', '}]', '],', '[{', '[]', '{}', ' {', ' [', ' "', '",\n', '"\n', '\n}', ',\n', ': [', ': {', '": [', '": {', '": true', '": false', '": null', 'true', 'false', 'null', ' true', ' false', ' null', '\\n', '\\"', '\\\\', '\\u', '://', '.com', '@', '-', '--', '...', '.', ',', ';', '!', '?', "'s", '()', '();', '=>', '==', '!=', '&&', '||'];
  for (const f of frags) add(f);
  const cons = ['b', 'c', 'd', 'f', 'g', 'h', 'j', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w', 'z', 'st', 'tr', 'ch', 'sh', 'th', 'pr', 'br', 'gr', 'pl', 'ng', 'nd', 'rt'];
  const vows = ['a', 'e', 'i', 'o', 'u', 'ea', 'ou', 'io', 'ai', 'ee', 'y'];
  while (out.size < size - 1) {
    let w = '';
    const syl = 1 + Math.floor(r() * 3.2);
    for (let s = 0; s < syl; s++) w += (r() < 0.8 ? pick(cons) : '') + pick(vows) + (r() < 0.4 ? pick(cons) : '');
    const form = r();
    if (form < 0.45) add(' ' + w);
    else if (form < 0.75) add(w);
    else if (form < 0.85) add(' ' + w[0].toUpperCase() + w.slice(1));
    else if (form < 0.92) add(w[0].toUpperCase() + w.slice(1));
    else if (form < 0.96) add('_' + w);
    else add(w + pick(['"', '":', '",', '.', ',', 's']));
  }
  return ['', ...out];
}
/** The vocabulary as the constraint sees it: texts, plus byte tokens 0x80..0xFF (byte-level BPE). */
const withBytes = (texts: string[]): (string | Uint8Array)[] => [...texts, ...Array.from({ length: 128 }, (_, i) => Uint8Array.of(0x80 + i))];

const SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    name: { type: 'string', maxLength: 64 },
    email: { type: 'string', format: 'email' },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    score: { type: 'number', minimum: 0, maximum: 100 },
    active: { type: 'boolean' },
    role: { type: 'string', enum: ['admin', 'editor', 'viewer'] },
    created: { type: 'string', format: 'date-time' },
    birthday: { type: 'string', format: 'date' },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 8 },
    address: {
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
      required: ['street', 'city', 'zip'],
      additionalProperties: false,
    },
    phone: { type: ['string', 'null'] },
    balance: { type: 'number' },
    visits: { type: 'integer' },
    rating: { type: 'integer', minimum: 1, maximum: 5 },
    notes: { type: 'string' },
    manager: { anyOf: [{ type: 'string' }, { type: 'null' }] },
    level: { type: 'string', enum: ['junior', 'mid', 'senior'] },
    verified: { type: 'boolean' },
    locale: { type: 'string', pattern: '^[a-z]{2}-[A-Z]{2}$' },
  },
  required: ['id', 'name', 'email', 'age', 'score', 'active', 'role', 'created', 'birthday', 'tags', 'address', 'phone', 'balance', 'visits', 'rating', 'notes', 'manager', 'level', 'verified', 'locale'],
  additionalProperties: false,
};

const DOC_A = {
  id: '123e4567-e89b-12d3-a456-426614174000',
  name: 'Mara Stone',
  email: 'mara.stone@example.com',
  age: 41,
  score: 87.25,
  active: true,
  role: 'editor',
  created: '2024-03-18T09:41:07Z',
  birthday: '1983-07-02',
  tags: ['research', 'green tea', 'hiking'],
  address: { street: '12 Orchard Lane', city: 'Portland', zip: '97201' },
  phone: null,
  balance: -1520.5,
  visits: 311,
  rating: 4,
  notes: 'Prefers email contact; travels often in spring.',
  manager: 'Jon Reyes',
  level: 'senior',
  verified: false,
  locale: 'en-US',
};
const DOC_B = {
  ...DOC_A,
  id: 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
  name: 'Oskar Lind',
  email: 'o.lind@mail.example.org',
  age: 29,
  score: 12.5,
  active: false,
  role: 'viewer',
  created: '2023-11-30T23:05:59+01:00',
  tags: ['chess'],
  address: { street: 'Storgatan 4', city: 'Malmo', zip: '21142' },
  phone: '+46 40 123 456',
  notes: 'New hire, onboarding in progress.',
  manager: null,
  level: 'junior',
  locale: 'sv-SE',
};

/** Tokenize `text` greedily with the longest allowed token that is a prefix of the rest. */
function tokenize(c: TokenConstraint, texts: string[], text: string): number[] {
  const ids: number[] = [];
  let st = c.start();
  let i = 0;
  while (i < text.length) {
    let best = -1;
    for (const id of c.allowedIds(st)) {
      const t = id < texts.length ? texts[id] : '';
      if (t && text.startsWith(t, i) && (best < 0 || t.length > texts[best].length)) best = id;
    }
    if (best < 0) throw new Error(`cannot tokenize at ${i}: ${JSON.stringify(text.slice(i, i + 20))}`);
    ids.push(best);
    st = c.advance(st, best);
    i += texts[best].length;
  }
  if (!c.canTerminate(st)) throw new Error('document incomplete');
  return ids;
}

/** Per-step mask times (ms) along a token sequence, ending with the EOS mask. */
function maskTimes(c: TokenConstraint, ids: number[]): number[] {
  const times: number[] = [];
  let st = c.start();
  for (let k = 0; k <= ids.length; k++) {
    const t0 = performance.now();
    c.allowed(st);
    times.push(performance.now() - t0);
    if (k < ids.length) st = c.advance(st, ids[k]);
  }
  return times;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, p50: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)], max: s[s.length - 1] };
};
const fmt = (ms: number) => (ms < 0.01 ? `${(ms * 1000).toFixed(2)} us` : `${ms.toFixed(3)} ms`);
const row = (label: string, xs: number[]) => {
  const s = stats(xs);
  console.log(`  ${label.padEnd(8)} mean ${fmt(s.mean).padStart(10)}  p50 ${fmt(s.p50).padStart(10)}  p90 ${fmt(s.p90).padStart(10)}  max ${fmt(s.max).padStart(10)}  (${xs.length} steps)`);
};

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const STREAMS = Number(opt('streams', '16'));

const spec: ConstraintSpec = { type: 'json_schema', schema: SCHEMA };
/** tool_choice 'required' over 8 functions of 2-5 arguments each, in the Hermes syntax. */
const TOOL_SPEC: ConstraintSpec = {
  type: 'tool_calls',
  format: 'hermes',
  parallel: true,
  tools: Array.from({ length: 8 }, (_, i) => ({
    name: `tool_${i}`,
    parameters: {
      type: 'object',
      properties: Object.fromEntries(Object.entries(SCHEMA.properties).slice(i * 2, i * 2 + 2 + (i % 4))),
      required: Object.keys(SCHEMA.properties).slice(i * 2, i * 2 + 2),
      additionalProperties: false,
    },
  })),
};
/** Per vocabulary size: mean cost (ms) of one constrained token (mask + apply to V logits). */
const applyCost = new Map<number, { cold: number; warm: number }>();
const textA = JSON.stringify(DOC_A, null, 1).replace(/\n\s*/g, ' ').replace(/\{ /g, '{').replace(/ \}/g, '}').replace(/\[ /g, '[').replace(/ \]/g, ']');
const textB = JSON.stringify(DOC_B);

console.log(`structured-output masks: 20-property object schema; node ${process.version}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), load average ${os.loadavg()[0].toFixed(1)}`);
for (const size of [32_000, 128_000]) {
  console.log(`\nvocabulary: ${size} tokens`);
  const texts = makeVocab(size);
  let t0 = performance.now();
  const vocab = new TokenVocabulary(withBytes(texts), [0]);
  console.log(`  vocab    trie build ${(performance.now() - t0).toFixed(1)} ms (${vocab.nodeCount} nodes, once per model)`);

  // compile: best of 5 fresh compiles (no cache involved: specRules + lowerGrammar + start state)
  let compile = Infinity;
  let engine!: GrammarEngine;
  for (let rep = 0; rep < 5; rep++) {
    t0 = performance.now();
    const { rules, root } = specRules(spec);
    engine = new GrammarEngine(lowerGrammar(rules, root, vocab.alphabet));
    compile = Math.min(compile, performance.now() - t0);
  }
  console.log(`  compile  ${compile.toFixed(2)} ms (schema -> grammar with ${engine.grammar.kind.length} positions, ${engine.grammar.ruleAlts.length} rules; best of 5; target <= 50 ms)`);

  // token sequences from a scratch constraint (not timed)
  const scratch = new TokenConstraint(new GrammarEngine(engine.grammar), vocab, [0]);
  const idsA = tokenize(scratch, texts, textA);
  const idsB = tokenize(scratch, texts, textB);

  // three independent runs, each on a fresh engine and constraint; per step the fastest of the
  // three (the VM is shared: this filters out other processes' time slices and JIT warm-up)
  const runs: { cold: number[]; trans: number[]; warm: number[]; c: TokenConstraint; first: number }[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const c = new TokenConstraint(new GrammarEngine(engine.grammar), vocab, [0]);
    t0 = performance.now();
    c.allowed(c.start());
    const first = performance.now() - t0;
    runs.push({ first, c, cold: maskTimes(c, idsA), trans: maskTimes(c, idsB), warm: maskTimes(c, idsA) });
  }
  const best = (k: 'cold' | 'trans' | 'warm') => runs[0][k].map((_, i) => Math.min(...runs.map((r) => r[k][i])));
  const c = runs[0].c;
  console.log(`  first    ${Math.min(...runs.map((r) => r.first)).toFixed(2)} ms (start-state mask of a new schema)`);
  row('cold', best('cold'));
  row('trans', best('trans'));
  row('warm', best('warm'));

  // peer: per-token stepping without the trie, fresh engine each time for a cold comparison
  const naiveEngine = new GrammarEngine(engine.grammar);
  const naive: number[] = [];
  const trie: number[] = [];
  const tc = new TokenConstraint(new GrammarEngine(engine.grammar), vocab, [0]);
  let st = naiveEngine.start;
  let st2 = tc.start();
  for (let k = 0; k < Math.min(30, idsA.length); k++) {
    t0 = performance.now();
    let n = 0;
    for (let id = 1; id < vocab.size; id++) {
      const b = vocab.bytes[id];
      if (b && naiveEngine.stepBytes(st, b) !== DEAD) n++;
    }
    naive.push(performance.now() - t0);
    t0 = performance.now();
    tc.allowed(st2);
    trie.push(performance.now() - t0);
    st = naiveEngine.stepBytes(st, vocab.bytes[idsA[k]]!);
    st2 = tc.advance(st2, idsA[k]);
    void n;
  }
  const nm = stats(naive).mean;
  const tm = stats(trie).mean;
  console.log(`  naive    mean ${fmt(nm)} vs trie ${fmt(tm)} per cold step on the first 30 steps: trie ${(nm / tm).toFixed(1)}x faster`);
  console.log(`  document A: ${idsA.length} tokens (${textA.length} chars), B: ${idsB.length} tokens; engine states interned: ${c.engine.stateCount}; mask cache hits ${c.hits}, misses ${c.misses}; context-independent part hits ${c.localHits}, misses ${c.localMisses}`);

  // what the engine pays per constrained token: mask + applying it to a logits row of V floats
  const logits = new Float32Array(vocab.size);
  const applyTimes = (ct: TokenConstraint): number[] => {
    const out: number[] = [];
    let s = ct.start();
    for (let k = 0; k <= idsA.length; k++) {
      logits.fill(0.5);
      const t = performance.now();
      ct.applyMask(s, logits);
      out.push(performance.now() - t);
      if (k < idsA.length) s = ct.advance(s, idsA[k]!);
    }
    return out;
  };
  const applyRuns = [0, 1, 2].map(() => {
    const ct = new TokenConstraint(new GrammarEngine(engine.grammar), vocab, [0]);
    return { cold: applyTimes(ct), warm: applyTimes(ct) };
  });
  const bestOf = (k: 'cold' | 'warm') => applyRuns[0]![k].map((_, i) => Math.min(...applyRuns.map((r) => r[k][i]!)));
  row('apply', bestOf('cold'));
  row('apply/w', bestOf('warm'));
  applyCost.set(size, { cold: stats(bestOf('cold')).mean, warm: stats(bestOf('warm')).mean });

  let toolCompile = Infinity;
  let toolPositions = 0;
  for (let rep = 0; rep < 5; rep++) {
    t0 = performance.now();
    const { rules, root } = specRules(TOOL_SPEC);
    const g = lowerGrammar(rules, root, vocab.alphabet);
    const tc = new TokenConstraint(new GrammarEngine(g), vocab, [0]);
    tc.allowed(tc.start());
    toolCompile = Math.min(toolCompile, performance.now() - t0);
    toolPositions = g.kind.length;
  }
  console.log(`  tools    ${toolCompile.toFixed(2)} ms (tool_choice 'required' over 8 functions -> grammar with ${toolPositions} positions and its start mask; best of 5)`);
}

// ---- against a real decode step: TinyLlama-1.1B shape, STREAMS concurrent streams ----

const modelPath = opt('model', join(import.meta.dirname, 'out', 'models', 'tinyllama-random-q8_0.gguf'));
if (!existsSync(modelPath)) {
  console.log(`\n(no ${modelPath}: make it with \`npm run bench:generate -- --models tinyllama --types q8_0\` or pass --model PATH for the decode-step comparison)`);
} else {
  const steps = Number(opt('steps', '8'));
  const be = cpuBackend();
  be.setThreads(Number(opt('threads', '2')));
  const lm = loadModelSync(modelPath, be);
  const V = lm.config.vocabSize;
  console.log(`\ndecode step: ${modelPath.split('/').pop()} (vocabulary ${V}), ${STREAMS} streams, ${steps} timed decode steps per run, ${opt('threads', '2')} threads; load average ${os.loadavg()[0].toFixed(1)}`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  // One run: STREAMS requests with distinct 16-token prompts, prefilled in the first step; then
  // `steps` steps in which every stream decodes one token, timed one by one.
  const run = (constraint?: ConstraintSpec): number[] => {
    const engine = new Engine(lm.model, lm.tokenizer, { numBlocks: STREAMS * 4 + 8, blockSize: 16, maxSeqs: STREAMS, maxBatchTokens: 512, eosIds: lm.config.eosIds, kvPopulate: false });
    for (let i = 0; i < STREAMS; i++) {
      const promptIds = [1, ...Array.from({ length: 15 }, (_, k) => 100 + ((i * 977 + k * 131) % (V - 200)))];
      const sampling = { temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, maxTokens: steps + 4, stop: [], stopTokenIds: [], ignoreEos: true, n: 1, ...(constraint ? { constraint } : {}) };
      engine.submit({ id: `s${i}`, promptIds, sampling });
    }
    engine.step(); // prefill (and each stream's first token)
    const times: number[] = [];
    for (let k = 0; k < steps; k++) {
      const t = performance.now();
      const evs = engine.step();
      times.push(performance.now() - t);
      if (evs.filter((e) => e.tokenId >= 0).length !== STREAMS) throw new Error(`step ${k}: ${evs.length} events, expected one token per stream`);
    }
    return times;
  };
  const plain1 = run();
  const cold = run(spec);
  const plain2 = run();
  const warm = run(spec);
  const plain = median([...plain1, ...plain2]);
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
  console.log(`  unconstrained  median ${plain.toFixed(1)} ms per step (runs before and after: ${median(plain1).toFixed(1)} / ${median(plain2).toFixed(1)} ms)`);
  console.log(`  constrained    median ${median(cold).toFixed(1)} ms cold (${pct(median(cold) / plain - 1)}), ${median(warm).toFixed(1)} ms warm (${pct(median(warm) / plain - 1)}): every stream masked by the 20-property schema`);
  for (const [size, c] of applyCost) {
    console.log(`  vocab ${String(size).padStart(6)}: ${STREAMS} x mask+apply = ${(c.cold * STREAMS).toFixed(2)} ms cold, ${(c.warm * STREAMS).toFixed(2)} ms warm per step = ${pct((c.cold * STREAMS) / plain)} / ${pct((c.warm * STREAMS) / plain)} of this decode step (target <= 10%)`);
  }
}
