// The CLIP tokenizer on the real 49,408-token vocabulary, converted to the Hugging Face tokenizer/
// layout (vocab.json + merges.txt, committed gzipped), on ~400 prompts: punctuation, numbers,
// accents, scripts, emoji, apostrophes, repeated whitespace, HTML entities, control characters, long
// prompts. 'openai' mode against OpenAI's own tokenizer (clip/simple_tokenizer.py); the default
// 'transformers' mode against transformers' no-ftfy clean-up rules written out with Python's
// unicodedata, on OpenAI's BPE, with SD 1.x's and SD 2.x's special tokens. Fixtures:
// scripts/oracle/clip_tokenizer.py.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { ClipTokenizer, ClipTokenizerError, normalizeClipText, unescapeHtml } from '../src/diffusion/clip-tokenizer.ts';

const fixtures = join(import.meta.dirname, 'fixtures', 'diffusion');
const vocabJson = gunzipSync(readFileSync(join(fixtures, 'clip-vocab', 'vocab.json.gz'))).toString('utf8');
const mergesTxt = gunzipSync(readFileSync(join(fixtures, 'clip-vocab', 'merges.txt.gz'))).toString('utf8');
interface Case { prompt: string; ids: number[]; hf_ids?: number[]; hf_sd2_ids?: number[] }
const cases = (JSON.parse(readFileSync(join(fixtures, 'clip-tokenizer.json'), 'utf8')) as { cases: Case[] }).cases;

function mismatches(tok: ClipTokenizer, want: (c: Case) => number[]): string[] {
  const bad: string[] = [];
  for (const c of cases) {
    const got = [tok.bosId, ...tok.encodeText(c.prompt), tok.eosId];
    const w = want(c);
    if (got.join(',') !== w.join(',')) bad.push(`${JSON.stringify(c.prompt)}: got [${got.join(', ')}], want [${w.join(', ')}]`);
  }
  return bad;
}

// SD 1.5's tokenizer/ files (pad = <|endoftext|>) and SD 2.x's (pad = "!").
const SD15_CONFIG = {
  add_prefix_space: false, bos_token: { __type: 'AddedToken', content: '<|startoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  do_lower_case: true, eos_token: { __type: 'AddedToken', content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  errors: 'replace', model_max_length: 77, name_or_path: 'openai/clip-vit-large-patch14', pad_token: '<|endoftext|>',
  tokenizer_class: 'CLIPTokenizer', unk_token: { __type: 'AddedToken', content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
};
const SD15_SPECIAL = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: '<|endoftext|>' };
const SD2_CONFIG = { ...SD15_CONFIG, pad_token: '!', name_or_path: 'laion/CLIP-ViT-H-14' };
const SD2_SPECIAL = { ...SD15_SPECIAL, pad_token: '!' };

describe('CLIP tokenizer', () => {
  let dir: string;
  let tok: ClipTokenizer;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'slipstream-clip-'));
    writeFileSync(join(dir, 'vocab.json'), vocabJson);
    writeFileSync(join(dir, 'merges.txt'), mergesTxt);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(SD15_CONFIG));
    writeFileSync(join(dir, 'special_tokens_map.json'), JSON.stringify(SD15_SPECIAL));
    tok = ClipTokenizer.load(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the tokenizer/ folder: 49,408 tokens, bos 49406, eos 49407, max length 77', () => {
    assert.equal(tok.vocabSize, 49408);
    assert.equal(tok.bosId, 49406);
    assert.equal(tok.eosId, 49407);
    assert.equal(tok.padId, 49407);
    assert.equal(tok.maxLength, 77);
  });

  it(`'openai' mode matches OpenAI's tokenizer on ${cases.length} prompts`, () => {
    const openai = ClipTokenizer.load(dir, { mode: 'openai' });
    assert.equal(openai.mode, 'openai');
    assert.deepEqual(mismatches(openai, (c) => c.ids), []);
  });

  it(`'transformers' mode (the default) matches transformers' CLIPTokenizer rules on ${cases.length} prompts`, () => {
    assert.equal(tok.mode, 'transformers');
    assert.deepEqual(mismatches(tok, (c) => c.hf_ids ?? c.ids), []);
    // Where the two front ends differ: CJK ideographs, format characters (ZWJ in emoji), HTML entities.
    const cjk = cases.find((c) => c.prompt === '北京 and 上海')!;
    assert.notDeepEqual(cjk.hf_ids, cjk.ids);
  });

  it('encode pads with the config\'s pad token and masks it', () => {
    const e = tok.encode('a photo of a cat');
    assert.deepEqual(e.ids.slice(0, 7), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert.equal(e.ids.length, 77);
    assert.ok(e.ids.slice(7).every((i) => i === 49407));
    assert.deepEqual(e.attentionMask.slice(5, 9), [1, 1, 0, 0]);
    assert.equal(e.truncated, false);
    // SD 2.x / SDXL's second tokenizer pad with "!" (id 0), read from the config.
    const dir2 = mkdtempSync(join(tmpdir(), 'slipstream-clip2-'));
    try {
      writeFileSync(join(dir2, 'vocab.json'), vocabJson);
      writeFileSync(join(dir2, 'merges.txt'), mergesTxt);
      writeFileSync(join(dir2, 'tokenizer_config.json'), JSON.stringify(SD2_CONFIG));
      writeFileSync(join(dir2, 'special_tokens_map.json'), JSON.stringify(SD2_SPECIAL));
      const t2 = ClipTokenizer.load(dir2);
      assert.equal(t2.padId, 0);
      // ... and, being a special token, every "!" in a prompt is split out as id 0 (diffusers issue 4153).
      assert.deepEqual(mismatches(t2, (c) => c.hf_sd2_ids ?? c.hf_ids ?? c.ids), []);
      assert.deepEqual(t2.encodeText('wow!! ok'), [2781, 0, 0, 2481]); // wow</w>, !, !, ok</w>
      assert.deepEqual(tok.encodeText('wow!! ok'), [2781, 748, 2481]); // SD 1.x: wow</w>, !!</w>, ok</w>
      const e2 = t2.encode('a photo of a cat');
      assert.deepEqual(e2.ids.slice(0, 8), [49406, 320, 1125, 539, 320, 2368, 49407, 0]);
      assert.ok(e2.ids.slice(7).every((i) => i === 0));
      // Only special_tokens_map.json saying so is enough too.
      const t3 = new ClipTokenizer({ vocab: JSON.parse(vocabJson), merges: mergesTxt, specialTokensMap: { pad_token: '!' } });
      assert.equal(t3.padId, 0);
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('truncates to 77 ids (bos + 75 + eos) and reports the removed text, as diffusers warns', () => {
    const long = cases.find((c) => c.ids.length > 77)!;
    let removed = '';
    let removedIds: number[] = [];
    const e = tok.encode(long.prompt, { onTruncate: (text, ids) => { removed = text; removedIds = ids; } });
    assert.equal(e.truncated, true);
    assert.equal(e.ids.length, 77);
    assert.deepEqual(e.ids, [...long.ids.slice(0, 76), 49407]);
    assert.deepEqual(removedIds, long.ids.slice(76, -1));
    assert.equal(removed, tok.decode(long.ids.slice(76, -1)));
    assert.ok(removed.length > 0);
    assert.equal(tok.encode('short', { onTruncate: () => assert.fail('no truncation') }).truncated, false);
    assert.equal(tok.encode('a cat', { pad: false }).ids.length, 4);
  });

  it('decodes back to the normalized text', () => {
    const p = 'A photo of an Astronaut riding a horse on Mars';
    assert.equal(tok.decode(tok.encode(p).ids, { skipSpecialTokens: true }), normalizeClipText(p));
    // Every word ends in </w>, so punctuation and digits come back space-separated (as in transformers).
    assert.equal(tok.decode(tok.encode("don't stop, 100% café 🐱").ids, { skipSpecialTokens: true }), "don 't stop , 1 0 0 % café 🐱");
    assert.throws(() => tok.decode([50000]), /id 50000 is not in the vocabulary/);
  });

  it('normalizes as OpenAI\'s basic_clean + whitespace_clean + lower', () => {
    assert.equal(normalizeClipText('  A\t\tB \n C  '), 'a b c');
    assert.equal(normalizeClipText('e\u0301'), '\u00e9');
    assert.equal(unescapeHtml('&amp;amp; &lt;b&gt; &#39; &#x263A; &#128; &ampfoo &bogus;'), "&amp; <b> ' \u263a \u20ac &foo &bogus;");
  });

  it('names what is wrong with bad files', () => {
    const empty = mkdtempSync(join(tmpdir(), 'slipstream-clip-bad-'));
    try {
      assert.throws(() => ClipTokenizer.load(empty), (e: Error) => e instanceof ClipTokenizerError && /vocab.json not found/.test(e.message));
      writeFileSync(join(empty, 'vocab.json'), '{"a": 0}');
      assert.throws(() => ClipTokenizer.load(empty), /merges.txt not found/);
      writeFileSync(join(empty, 'merges.txt'), '#version: 0.2\na b c\n');
      assert.throws(() => ClipTokenizer.load(empty), /merges.txt line 2: expected two symbols/);
      writeFileSync(join(empty, 'merges.txt'), '#version: 0.2\n');
      assert.throws(() => ClipTokenizer.load(empty), /bos_token "<\|startoftext\|>" is not in vocab.json/);
      writeFileSync(join(empty, 'vocab.json'), '{"a": -1}');
      assert.throws(() => ClipTokenizer.load(empty), /id of "a" must be a non-negative integer/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
