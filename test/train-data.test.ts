// Training data: packing (tokens/targets/seg/positions by hand), the text/jsonl/chat readers,
// SFT loss masks, every corpus error naming its file and line, and the deterministic, resumable
// batch order.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '../src/formats/tokenizer.ts';
import { DataError, splitTextDocuments, TrainData, type Batch, type DataPosition, type Packed } from '../src/train/data.ts';

// A character-level tokenizer: BPE without merges. Specials 0..6, 'a'..'z' = 10..35, ' ' = 36,
// '.' = 37, '\n' = 38, so every expected id below can be read off the text.
const SPECIALS = ['<unk>', '<s>', '</s>', '<|user|>', '<|assistant|>', '<|system|>', '<pad>'];
const CHARS = 'abcdefghijklmnopqrstuvwxyz .\n';
function charTokenizer(config: Record<string, unknown> = {}): Tokenizer {
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((s, i) => (vocab[s] = i));
  [...CHARS].forEach((c, i) => (vocab[c] = 10 + i));
  const json = { model: { type: 'BPE', vocab, merges: [], unk_token: '<unk>' }, added_tokens: SPECIALS.map((s, i) => ({ id: i, content: s, special: true })) };
  return Tokenizer.fromJson(json, { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>', ...config });
}
const c = (ch: string) => 10 + CHARS.indexOf(ch);
const BOS = 1, EOS = 2, USER = 3, ASSISTANT = 4, PAD = 6;

// Turns end with eos; the generation prompt is the assistant header.
const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ '<|' + m.role + '|>' + m.content + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

let dir = '';
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-train-data-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
function file(content: string | Uint8Array, ext = '.jsonl'): string {
  const p = join(dir, `f${n++}${ext}`);
  writeFileSync(p, content);
  return p;
}
const jsonl = (...objs: unknown[]) => file(objs.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))).join('\n') + '\n');

const arr = (p: Packed) => ({ tokens: [...p.tokens], targets: [...p.targets], seg: [...p.seg], positions: [...p.positions] });

describe('packing', () => {
  it('cuts the stream into sequences, targets cross the cut, positions restart per document and sequence', () => {
    const d = TrainData.fromDocs([{ ids: [1, 10, 11, 12, 2] }, { ids: [1, 13, 14, 2] }], { seqLen: 4, evalFraction: 0 });
    assert.equal(d.train.length, 2);
    assert.deepEqual(arr(d.train[0]!), { tokens: [1, 10, 11, 12], targets: [10, 11, 12, 2], seg: [0, 0, 0, 0], positions: [0, 1, 2, 3] });
    // 2 continues document 0 (position restarts: it cannot see the previous sequence); 1 starts document 1.
    assert.deepEqual(arr(d.train[1]!), { tokens: [2, 1, 13, 14], targets: [-1, 13, 14, 2], seg: [0, 1, 1, 1], positions: [0, 0, 1, 2] });
    // Every token but each document's first is predicted exactly once.
    assert.equal(d.tokens, 7);
    assert.equal(d.stats.streamTokens, 9);
  });

  it('pads the last sequence (targets -1, a segment of its own) and splits long documents', () => {
    const d = TrainData.fromDocs([{ ids: [1, 10, 11, 12, 2] }, { ids: [1, 13, 14, 2] }], { seqLen: 5, evalFraction: 0, padId: PAD });
    assert.equal(d.train.length, 2);
    assert.deepEqual(arr(d.train[0]!), { tokens: [1, 10, 11, 12, 2], targets: [10, 11, 12, 2, -1], seg: [0, 0, 0, 0, 0], positions: [0, 1, 2, 3, 4] });
    assert.deepEqual(arr(d.train[1]!), { tokens: [1, 13, 14, 2, PAD], targets: [13, 14, 2, -1, -1], seg: [0, 0, 0, 0, 1], positions: [0, 1, 2, 3, 0] });
    const long = TrainData.fromDocs([{ ids: [1, 2, 3, 4, 5, 6, 7, 8] }], { seqLen: 3, evalFraction: 0 });
    assert.deepEqual(long.train.map((p) => [...p.targets]), [[2, 3, 4], [5, 6, 7], [8, -1, -1]]);
    assert.deepEqual(long.train.map((p) => [...p.positions]), [[0, 1, 2], [0, 1, 2], [0, 1, 0]]);
  });

  it('masks non-loss tokens and drops sequences with nothing to learn', () => {
    // Document 0 has loss only on its last two tokens; the first sequence then has none.
    const d = TrainData.fromDocs([{ ids: [1, 2, 3, 4, 5, 6, 7], loss: [0, 0, 0, 0, 0, 1, 1] }], { seqLen: 3, evalFraction: 0 });
    assert.equal(d.stats.droppedSequences, 1);
    assert.deepEqual(d.train.map((p) => [...p.targets]), [[-1, 6, 7]]);
    assert.equal(d.tokens, 2);
    assert.throws(() => TrainData.fromDocs([{ ids: [1] }], { seqLen: 4 }), (e: unknown) => e instanceof DataError && /no tokens to learn from/.test(e.message));
  });

  it('holds out a seeded share of sequences (at least one of two or more, never all)', () => {
    const docs = Array.from({ length: 40 }, (_, i) => ({ ids: [1, 10 + (i % 20), 11, 12, 2] }));
    const a = TrainData.fromDocs(docs, { seqLen: 5, evalFraction: 0.25, seed: 7 });
    assert.equal(a.train.length + a.eval.length, 40);
    assert.equal(a.eval.length, 10);
    const b = TrainData.fromDocs(docs, { seqLen: 5, evalFraction: 0.25, seed: 7 });
    assert.deepEqual(a.eval.map(arr), b.eval.map(arr));
    const other = TrainData.fromDocs(docs, { seqLen: 5, evalFraction: 0.25, seed: 8 });
    assert.notDeepEqual(a.eval.map((p) => p.tokens.byteOffset), other.eval.map((p) => p.tokens.byteOffset));
    const two = TrainData.fromDocs(docs.slice(0, 2), { seqLen: 5, evalFraction: 0.01 });
    assert.equal(two.eval.length, 1);
    assert.equal(two.train.length, 1);
    assert.equal(TrainData.fromDocs(docs.slice(0, 1), { seqLen: 5, evalFraction: 0.5 }).eval.length, 0);
    assert.equal(TrainData.fromDocs(docs, { seqLen: 5, evalFraction: 0 }).eval.length, 0);
    // Eval batches: fixed order, last one short.
    const eb = a.evalBatches(4);
    assert.deepEqual(eb.map((b) => b.B), [4, 4, 2]);
    assert.deepEqual([...eb[2]!.tokens.subarray(5, 10)], [...a.eval[9]!.tokens]);
  });
});

describe('reading', () => {
  it('text: <|endoftext|> lines separate documents, blank lines do not', () => {
    assert.deepEqual(splitTextDocuments('ab\n\n\ncd\n<|endoftext|>\nef\r\n  <|endoftext|>\r\n\n<|endoftext|>\ngh\n'), ['ab\n\n\ncd', 'ef\r', 'gh\n']);
    const tok = charTokenizer();
    const d = TrainData.load([file('ab\n<|endoftext|>\ncd', '.txt')], tok, { seqLen: 4, format: 'text', evalFraction: 0 });
    // [bos a b eos][bos c d eos]
    assert.deepEqual(d.train.map(arr), [
      { tokens: [BOS, c('a'), c('b'), EOS], targets: [c('a'), c('b'), EOS, -1], seg: [0, 0, 0, 0], positions: [0, 1, 2, 3] },
      { tokens: [BOS, c('c'), c('d'), EOS], targets: [c('c'), c('d'), EOS, -1], seg: [0, 0, 0, 0], positions: [0, 1, 2, 3] },
    ]);
    assert.equal(d.stats.documents, 2);
  });

  it('jsonl: the text field (textField option), blank lines and empty texts skipped, several files in order', () => {
    const tok = charTokenizer();
    const f1 = jsonl({ body: 'ab', text: 'zz' }, '', { body: '' });
    const f2 = jsonl({ body: 'c' });
    const progress: [number, number][] = [];
    const d = TrainData.load([f1, f2], tok, { seqLen: 16, format: 'jsonl', textField: 'body', evalFraction: 0 }, (done, total) => progress.push([done, total]));
    assert.deepEqual([...d.train[0]!.tokens.subarray(0, 7)], [BOS, c('a'), c('b'), EOS, BOS, c('c'), EOS]);
    assert.deepEqual([...d.train[0]!.seg.subarray(0, 8)], [0, 0, 0, 0, 1, 1, 1, 2]);
    assert.equal(d.tokens, 5);
    assert.equal(progress.at(-1)![0], progress.at(-1)![1]);
  });

  it('chat: loss only on the assistant turns (two of them), the template places bos/eos', () => {
    const tok = charTokenizer({ chat_template: TEMPLATE });
    const f = jsonl({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
        { role: 'user', content: 'c' },
        { role: 'assistant', content: 'd' },
        { role: 'user', content: 'trailing turn with no answer' },
      ],
    });
    const d = TrainData.load([f], tok, { seqLen: 16, format: 'chat', evalFraction: 0 });
    const p = d.train[0]!;
    const doc = [BOS, USER, c('a'), EOS, ASSISTANT, c('b'), EOS, USER, c('c'), EOS, ASSISTANT, c('d'), EOS];
    assert.deepEqual([...p.tokens.subarray(0, doc.length)], doc);
    const m = -1;
    // Predicting b and the eos after it (from <|assistant|> and b), then d and its eos.
    assert.deepEqual([...p.targets.subarray(0, doc.length)], [m, m, m, m, c('b'), EOS, m, m, m, m, c('d'), EOS, m]);
    assert.equal(d.tokens, 4);
    // The conversation ends at its last assistant turn: padding follows.
    assert.deepEqual([...p.tokens.subarray(doc.length)], [PAD, PAD, PAD]);
  });

  it('chat: prompt/completion lines, loss on the completion and eos; data.chatTemplate overrides', () => {
    const tok = charTokenizer();
    const f = jsonl({ prompt: 'ab', completion: 'c' }, { messages: [{ role: 'system', content: 'x' }, { role: 'assistant', content: 'y' }] });
    const d = TrainData.load([f], tok, { seqLen: 16, format: 'chat', evalFraction: 0, chatTemplate: TEMPLATE });
    const p = d.train[0]!;
    assert.deepEqual([...p.tokens.subarray(0, 5)], [BOS, c('a'), c('b'), c('c'), EOS]);
    assert.deepEqual([...p.targets.subarray(0, 5)], [-1, -1, c('c'), EOS, -1]);
    assert.deepEqual([...p.tokens.subarray(5, 13)], [BOS, 5, c('x'), EOS, ASSISTANT, c('y'), EOS, PAD]);
    assert.deepEqual([...p.targets.subarray(5, 13)], [-1, -1, -1, -1, c('y'), EOS, -1, -1]);
  });
});

describe('corpus errors name the file and line', () => {
  const tok = charTokenizer({ chat_template: TEMPLATE });
  const fails = (f: string, format: 'text' | 'jsonl' | 'chat', re: RegExp, opts: { chatTemplate?: string; tok?: Tokenizer } = {}) =>
    assert.throws(
      () => TrainData.load([f], opts.tok ?? tok, { seqLen: 8, format, chatTemplate: opts.chatTemplate }),
      (e: unknown) => e instanceof DataError && e.message.startsWith(f + ': ') && re.test(e.message),
    );
  const user = { role: 'user', content: 'a' };
  const asst = { role: 'assistant', content: 'b' };

  it('empty files', () => {
    fails(file('', '.txt'), 'text', /the file is empty/);
    fails(file('\n\n<|endoftext|>\n  \n', '.txt'), 'text', /no documents/);
    fails(file('\n\n'), 'jsonl', /the file is empty/);
    fails(jsonl({ text: '' }), 'jsonl', /no documents/);
  });

  it('bytes that are not UTF-8', () => {
    fails(file(Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')])), 'jsonl', /line 2: is not valid UTF-8/);
    fails(file(Buffer.from([0x61, 0x0a, 0x62, 0x0a, 0xc3]), '.txt'), 'text', /line 3: is not valid UTF-8/);
  });

  it('bad JSON lines and fields', () => {
    fails(jsonl({ text: 'a' }, '', '{"text": "b"'), 'jsonl', /line 3: not valid JSON/);
    fails(jsonl('[1, 2]'), 'jsonl', /line 1: expected a JSON object/);
    fails(jsonl({ text: 'a' }, { body: 'b' }), 'jsonl', /line 2: field "text" is missing/);
    fails(jsonl({ text: 5 }), 'jsonl', /line 1: field "text" is not a string/);
  });

  it('bad conversations', () => {
    fails(jsonl({ messages: [] }), 'chat', /line 1: "messages" is empty/);
    fails(jsonl({ messages: 'hi' }), 'chat', /line 1: "messages" must be a list/);
    fails(jsonl({ messages: [user, asst] }, { messages: [user, { role: 'tool', content: 'x' }] }), 'chat', /line 2: messages\[1\]\.role "tool" is not one of system, user, assistant/);
    fails(jsonl({ messages: [user, { role: 'assistant', content: 3 }] }), 'chat', /line 1: messages\[1\]\.content is not a string/);
    fails(jsonl({ messages: [{ content: 'a' }] }), 'chat', /line 1: messages\[0\]\.role is missing/);
    fails(jsonl({ messages: [user] }), 'chat', /line 1: the conversation has no assistant message/);
    fails(jsonl({ prompt: 'a' }), 'chat', /line 1: "completion" is missing/);
    fails(jsonl({ text: 'a' }), 'chat', /line 1: expected a "messages" list or "prompt" and "completion"/);
    fails(jsonl({ messages: [user, asst] }), 'chat', /line 1: .*needs a chat template/, { tok: charTokenizer() });
    // A template whose generation prompt is not how it starts an assistant turn.
    const bad = TEMPLATE.replace("{{ '<|assistant|>' }}", "{{ '<|assistant|>z' }}");
    fails(jsonl({ messages: [user, asst] }), 'chat', /line 1: the chat template's rendering up to assistant turn messages\[1\] does not start with/, { chatTemplate: bad });
    fails(jsonl({ messages: [user, asst] }), 'chat', /line 1: chat template rejected the conversation: nope/, { chatTemplate: "{{ raise_exception('nope') }}" });
  });

  it('missing files', () => {
    assert.throws(() => TrainData.load([join(dir, 'nope.jsonl')], tok, { seqLen: 8, format: 'jsonl' }), (e: unknown) => e instanceof DataError && /nope\.jsonl: no such file/.test(e.message));
  });
});

describe('batches', () => {
  const docs = Array.from({ length: 23 }, (_, i) => ({ ids: [1, 10 + i, 11 + i, 12 + i, 2, 1, 40 + i, 2] }));
  const data = () => TrainData.fromDocs(docs, { seqLen: 6, evalFraction: 0.1, seed: 3 });
  const rowsOf = (b: Batch) => Array.from({ length: b.B }, (_, r) => [...b.tokens.subarray(r * b.T, (r + 1) * b.T)].join(','));

  it('assembles rows with segment ids unique per (row, document)', () => {
    const d = data();
    const { batch } = d.nextBatch(4, TrainData.startPosition(0));
    assert.equal(batch.B, 4);
    assert.equal(batch.T, 6);
    for (let r = 0; r < 4; r++) {
      const row = d.train.find((p) => [...p.tokens].join(',') === rowsOf(batch)[r])!;
      assert.ok(row);
      assert.deepEqual([...batch.seg.subarray(r * 6, r * 6 + 6)], [...row.seg].map((s) => s + r * 6));
      assert.deepEqual([...batch.targets.subarray(r * 6, r * 6 + 6)], [...row.targets]);
      assert.deepEqual([...batch.positions.subarray(r * 6, r * 6 + 6)], [...row.positions]);
    }
  });

  it('is a pure function of the position: every sequence once per epoch, shuffled per epoch', () => {
    const d = data();
    const N = d.train.length;
    let pos: DataPosition = TrainData.startPosition(5);
    const seen: string[] = [];
    const epochs: string[][] = [[], []];
    while (seen.length < 2 * N) {
      const before = pos;
      const r = d.nextBatch(3, pos);
      // Same position, same batch (and the cached order does not leak between calls).
      assert.deepEqual(d.nextBatch(3, before).batch, r.batch);
      rowsOf(r.batch).forEach((row, i) => {
        const k = seen.length;
        if (k < 2 * N) epochs[k < N ? 0 : 1]!.push(row);
        seen.push(row);
        void i;
      });
      pos = r.pos;
    }
    const all = d.train.map((p) => [...p.tokens].join(',')).sort();
    assert.deepEqual([...epochs[0]!].sort(), all);
    assert.deepEqual([...epochs[1]!].sort(), all);
    assert.notDeepEqual(epochs[0], epochs[1]);
    assert.notDeepEqual(epochs[0], d.train.map((p) => [...p.tokens].join(',')));
    assert.notDeepEqual(rowsOf(d.nextBatch(8, TrainData.startPosition(6)).batch), rowsOf(d.nextBatch(8, TrainData.startPosition(5)).batch));
  });

  it('a resumed run (position through JSON, data rebuilt) draws exactly the same batches', () => {
    const d = data();
    let pos = TrainData.startPosition(11);
    const straight: Batch[] = [];
    let saved = '';
    for (let i = 0; i < 12; i++) {
      if (i === 5) saved = JSON.stringify(pos);
      const r = d.nextBatch(4, pos);
      straight.push(r.batch);
      pos = r.pos;
    }
    const d2 = data();
    let p2 = JSON.parse(saved) as DataPosition;
    for (let i = 5; i < 12; i++) {
      const r = d2.nextBatch(4, p2);
      assert.deepEqual(r.batch, straight[i]);
      p2 = r.pos;
    }
    assert.deepEqual(p2, pos);
    assert.equal(pos.epoch, 1); // 48 rows over 28 sequences: the batches crossed into the second epoch
  });

  it('rejects bad positions', () => {
    const d = data();
    assert.throws(() => d.nextBatch(2, { epoch: 0, index: d.train.length, seed: 0 }), /past the end of an epoch/);
    assert.throws(() => d.nextBatch(2, { epoch: -1, index: 0, seed: 0 }), /bad data position/);
    assert.throws(() => d.nextBatch(0, TrainData.startPosition()), /batch size 0/);
  });
});
