// The procedural story corpus behind the default model (recipes/default-model/corpus.ts):
// determinism, variety, and surface grammar checked independently of the generator's own code
// (articles, capitals, end punctuation, quotes, agreement, leftover placeholders), plus the CLI.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ARC_NAMES,
  MAX_WORDS,
  MIN_WORDS,
  articleFor,
  corpusStats,
  generateArcStory,
  generateCorpus,
  generateStory,
  inflect,
  mulberry32,
  parseCorpusArgs,
  pluralOf,
  runCorpusCli,
  wordsOf,
} from '../recipes/default-model/corpus.ts';

const CORPUS = generateCorpus({ stories: 2000, seed: 12345 });

// Vowel-initial words that take "a", and consonant-initial words that take "an" (kept here on
// purpose rather than imported, so the check does not trust the generator's own table).
const A_OK = new Set(['one', 'once', 'unicorn', 'unicorns', 'uniform', 'unique', 'useful', 'usual', 'university', 'ukulele', 'unicycle', 'eucalyptus', 'european', 'ewe']);
const AN_OK = new Set(['hour', 'hours', 'honest', 'honor', 'heir']);

/** Every surface problem in one story, as readable strings (empty: clean). */
function problems(story: string): string[] {
  const out: string[] = [];
  const bad = (what: string, at: string): void => {
    out.push(`${what}: ...${at}...`);
  };
  for (const m of story.matchAll(/\b(a|A|an|An) ([A-Za-z]+)/g)) {
    const art = m[1]!.toLowerCase();
    const w = m[2]!.toLowerCase();
    const vowel = /^[aeiou]/.test(w);
    if (art === 'a' && vowel && !A_OK.has(w)) bad('"a" before a vowel', m[0]);
    if (art === 'an' && !vowel && !AN_OK.has(w)) bad('"an" before a consonant', m[0]);
  }
  for (const pat of [/\{|\}/, /undefined|NaN|null|\[object/, / {2}/, / [,.!?]/, /,,|\.\.|,\.|\.,|!\.|\?\./, /[.!?,]"[.,]/, /""/])
    for (const m of story.matchAll(new RegExp(pat.source, 'g'))) bad(`leftover or broken text ${pat}`, story.slice(Math.max(0, m.index! - 20), m.index! + 20));
  // Simple agreement slips a template could make.
  for (const m of story.matchAll(/\b(he|she|it|He|She|It) (were|are|have|don't)\b|\b(they|They|we|We|you|You) (was|is|has|doesn't)\b|\b(I) (is|are|was not going|has)\b/g)) bad('agreement', m[0]);
  for (const m of story.matchAll(/\b([A-Za-z]+) \1\b/gi)) bad('doubled word', m[0]);

  for (const para of story.split('\n\n')) {
    if (para.trim() !== para || para.length === 0) bad('paragraph spacing', para.slice(0, 30));
    if (!/^"?[A-Z]/.test(para)) bad('paragraph must start with a capital', para.slice(0, 30));
    if (!/[.!?]"?$/.test(para)) bad('paragraph must end with . ! or ?', para.slice(-30));
    const quotes = (para.match(/"/g) ?? []).length;
    if (quotes % 2 !== 0) bad('unbalanced quotes', para.slice(0, 60));
    // Quoted speech: starts with a capital and ends with . , ! or ? inside the quotes.
    for (const m of para.matchAll(/"([^"]*)"/g)) {
      const q = m[1]!;
      if (!/^[A-Z]/.test(q)) bad('quote must start with a capital', q);
      if (!/[.,!?]$/.test(q)) bad('quote must end with punctuation', q);
    }
    // A sentence end outside quotes (". " not followed by a quote) must be followed by a capital.
    for (const m of para.matchAll(/[.!?] +"?([a-z])/g)) bad('sentence must start with a capital', para.slice(Math.max(0, m.index! - 25), m.index! + 10));
    // After speech closed with a full stop, a new sentence begins (tags follow a comma instead).
    for (const m of para.matchAll(/\." +([a-z])/g)) bad('sentence after ." must start with a capital', para.slice(Math.max(0, m.index! - 25), m.index! + 10));
    // Speech closed with a comma is followed by its tag: a lower-case verb or pronoun, or a name.
    for (const m of para.matchAll(/," +([A-Za-z]+)/g)) if (/^(The|A|An)$/.test(m[1]!) === false && /^[a-z]/.test(m[1]!) === false && /^[A-Z][a-z]+$/.test(m[1]!) === false) bad('odd dialogue tag', m[0]);
  }
  return out;
}

describe('story corpus', () => {
  it('is deterministic for a seed, and a story draw is deterministic for an rng state', () => {
    assert.deepEqual(generateCorpus({ stories: 40, seed: 7 }), generateCorpus({ stories: 40, seed: 7 }));
    assert.equal(generateStory(mulberry32(99)), generateStory(mulberry32(99)));
    // The same seed gives a prefix of a longer run.
    assert.deepEqual(generateCorpus({ stories: 10, seed: 12345 }), CORPUS.slice(0, 10));
  });

  it('gives different stories for different seeds', () => {
    const a = new Set(generateCorpus({ stories: 100, seed: 1 }));
    const b = generateCorpus({ stories: 100, seed: 2 });
    assert.equal(b.filter((s) => a.has(s)).length, 0);
    assert.notEqual(generateStory(mulberry32(1)), generateStory(mulberry32(2)));
  });

  it('has no exact duplicates in 2000 stories', () => {
    assert.equal(new Set(CORPUS).size, CORPUS.length);
  });

  it('keeps every story between MIN_WORDS and MAX_WORDS words', () => {
    const st = corpusStats(CORPUS);
    assert.ok(st.minWords >= MIN_WORDS && st.maxWords <= MAX_WORDS, `lengths ${st.minWords}..${st.maxWords}`);
    assert.ok(MIN_WORDS >= 80 && MAX_WORDS <= 250);
  });

  it('uses a broad but simple vocabulary', () => {
    const st = corpusStats(CORPUS);
    assert.ok(st.distinct > 1800, `only ${st.distinct} distinct words in 2000 stories`);
    assert.ok(st.distinct < 3500, `${st.distinct} distinct words: the vocabulary should stay simple`);
    // Variety of openings: no single first sentence dominates.
    const firsts = new Map<string, number>();
    for (const s of CORPUS) {
      const first = s.split(/(?<=[.!?])\s/)[0]!.replace(/\b[A-Z][a-z]+\b/g, 'X');
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    const top = Math.max(...firsts.values());
    assert.ok(top < CORPUS.length * 0.1, `one opening shape covers ${top} of ${CORPUS.length} stories`);
  });

  it('passes the grammar sanity checks on 2000 stories', () => {
    const found: string[] = [];
    for (const s of CORPUS) for (const p of problems(s)) found.push(p);
    assert.deepEqual(found.slice(0, 10), []);
  });

  it('passes the grammar checks for every story arc', () => {
    const rng = mulberry32(4242);
    assert.ok(ARC_NAMES.length >= 30, `${ARC_NAMES.length} arcs`);
    const found: string[] = [];
    for (const name of ARC_NAMES) {
      for (let i = 0; i < 15; i++) {
        const s = generateArcStory(name, rng);
        for (const p of problems(s)) found.push(`${name}: ${p}`);
        if (wordsOf(s).length < 60) found.push(`${name}: only ${wordsOf(s).length} words`);
      }
    }
    assert.deepEqual(found.slice(0, 10), []);
    assert.throws(() => generateArcStory('nope', rng), /unknown story arc "nope"/);
  });

  it('the checker itself catches broken text', () => {
    assert.ok(problems('Once there was a owl. She was happy.').some((p) => p.includes('"a" before a vowel')));
    assert.ok(problems('Once there was an big dog.').some((p) => p.includes('"an" before a consonant')));
    assert.ok(problems('It was a unicorn. It had an hour.').length === 0);
    assert.ok(problems('Mia ran. she fell.').some((p) => p.includes('capital')));
    assert.ok(problems('"Hello," said Mia. "Bye.').some((p) => p.includes('unbalanced')));
    assert.ok(problems('Hello {name} there.').length > 0);
    assert.ok(problems('He were sad. Then they was happy.').filter((p) => p.startsWith('agreement')).length === 2);
    assert.ok(problems('"Help!" she cried. "Thank you," said Ben. Then they left.').length === 0);
  });

  it('inflects words by rule and by exception', () => {
    assert.equal(articleFor('apple'), 'an');
    assert.equal(articleFor('ball'), 'a');
    assert.equal(articleFor('unicorn'), 'a');
    assert.equal(articleFor('hour'), 'an');
    assert.equal(articleFor('umbrella'), 'an');
    assert.deepEqual(inflect('hop around'), { base: 'hop around', past: 'hopped around', ing: 'hopping around' });
    assert.deepEqual(inflect('ride a bike'), { base: 'ride a bike', past: 'rode a bike', ing: 'riding a bike' });
    assert.deepEqual(inflect('carry'), { base: 'carry', past: 'carried', ing: 'carrying' });
    assert.deepEqual(inflect('play tag'), { base: 'play tag', past: 'played tag', ing: 'playing tag' });
    assert.equal(pluralOf('mouse'), 'mice');
    assert.equal(pluralOf('box'), 'boxes');
    assert.equal(pluralOf('butterfly'), 'butterflies');
    assert.equal(pluralOf('toy car'), 'toy cars');
    assert.equal(pluralOf('deer'), 'deer');
  });

  it('parses its command line', () => {
    assert.deepEqual(parseCorpusArgs(['--out', 'x.jsonl', '--stories', '5', '--seed', '3']), { out: 'x.jsonl', stories: 5, seed: 3 });
    assert.equal(parseCorpusArgs(['--help']), null);
    assert.equal(parseCorpusArgs(['--out', 'x.jsonl'])!.stories, 60000);
    assert.throws(() => parseCorpusArgs(['--stories', '5']), /--out FILE.jsonl is required/);
    assert.throws(() => parseCorpusArgs(['--out', 'x', '--stories', 'many']), /--stories must be an integer >= 1, got "many"/);
    assert.throws(() => parseCorpusArgs(['--out', 'x', '--bogus']), /unknown argument "--bogus"/);
    assert.throws(() => parseCorpusArgs(['--out']), /--out needs a value/);
  });

  it('writes JSONL with a "text" field from the command line and reports word counts', () => {
    // In-process (the script's entry point is a two-line wrapper around runCorpusCli); a child
    // process would cost most of this file's time budget in startup alone.
    const dir = mkdtempSync(join(tmpdir(), 'corpus-'));
    const out = join(dir, 'c.jsonl');
    const summary = runCorpusCli(['--out', out, '--stories', '25', '--seed', '5']);
    const lines = readFileSync(out, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 25);
    const texts = lines.map((l) => (JSON.parse(l) as { text: string }).text);
    assert.deepEqual(texts, generateCorpus({ stories: 25, seed: 5 }));
    const st = corpusStats(texts);
    assert.match(summary, new RegExp(`25 stories, ${st.words} words .* ${st.distinct} distinct words`));
    assert.match(runCorpusCli(['--help']), /^usage: /);
    assert.throws(() => runCorpusCli(['--out', join(dir, 'missing', 'x.jsonl'), '--stories', '1']), /cannot write .*missing/);
    assert.throws(() => runCorpusCli(['--stories', '1']), /--out FILE.jsonl is required\nusage: /);
  });
});
