// The default image model's data stages (recipes/default-image/stages.ts): the CLIP-subset
// tokenizer splits every caption as CLIP's own tokenizer does, the configs load through the
// pipeline's config readers, and the dataset is an imagefolder of training-split scenes.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import { clipTextConfig } from '../src/diffusion/clip-text.ts';
import { ClipTokenizer } from '../src/diffusion/clip-tokenizer.ts';
import { unetConfig } from '../src/diffusion/unet.ts';
import { vaeConfig } from '../src/diffusion/vae.ts';
import { readImage } from '../src/formats/image.ts';
import { buildDataset, buildModelSkeleton, MAX_TOKENS, sceneWords } from '../recipes/default-image/stages.ts';
import { examples, isHeldOut, parseCaption } from '../recipes/default-image/scenes.ts';

const tmp = mkdtempSync(join(tmpdir(), 'default-image-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const quiet = () => {};

describe('default image recipe: data stages', () => {
  const model = join(tmp, 'model');
  buildModelSkeleton(model, quiet);

  test('the subset tokenizer splits captions into the same pieces as CLIP, and every scene word is one token', () => {
    const clip = new ClipTokenizer({
      vocab: JSON.parse(gunzipSync(readFileSync(join(import.meta.dirname, '..', 'assets', 'clip', 'vocab.json.gz'))).toString('utf8')),
      merges: gunzipSync(readFileSync(join(import.meta.dirname, '..', 'assets', 'clip', 'merges.txt.gz'))).toString('utf8'),
    });
    const sub = ClipTokenizer.load(join(model, 'tokenizer'));
    assert.ok(sub.vocabSize < 700, `${sub.vocabSize} tokens`);
    assert.equal(sub.maxLength, MAX_TOKENS);
    for (const w of sceneWords()) assert.deepEqual(sub.tokenize(w), clip.tokenize(w), w);
    for (const e of [...examples(3, 'train', 0, 200, 32), ...examples(3, 'heldout', 0, 50, 32)]) {
      assert.deepEqual(sub.tokenize(e.caption), clip.tokenize(e.caption), e.caption);
      const enc = sub.encode(e.caption);
      assert.equal(enc.ids.length, MAX_TOKENS);
      assert.equal(enc.truncated, false, e.caption);
    }
    // Out of the grammar: bytes, never an error.
    assert.ok(sub.tokenize('a cat').length >= 2);
  });

  test('the configs are read by the pipeline\'s config readers; the shapes give 16x16 latents for 64x64 pictures', () => {
    const read = (c: string) => JSON.parse(readFileSync(join(model, c, 'config.json'), 'utf8'));
    const te = clipTextConfig(read('text_encoder'));
    const unet = unetConfig(read('unet'));
    const vae = vaeConfig(read('vae'));
    const sub = ClipTokenizer.load(join(model, 'tokenizer'));
    assert.equal(te.vocabSize, sub.vocabSize);
    assert.equal(te.eosTokenId, sub.eosId);
    assert.equal(te.maxPositions, MAX_TOKENS);
    assert.equal(unet.crossAttentionDim, te.hiddenSize);
    assert.equal(unet.inChannels, vae.latentChannels);
    assert.equal(2 ** (vae.blockOutChannels.length - 1), 4);
    assert.ok(JSON.parse(readFileSync(join(model, 'scheduler', 'scheduler_config.json'), 'utf8')).num_train_timesteps === 1000);
  });

  test('the dataset is an imagefolder of 64x64 training-split scenes with their captions', () => {
    const data = join(tmp, 'data');
    buildDataset(30, data, 1, quiet);
    const lines = readFileSync(join(data, 'metadata.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file_name: string; text: string });
    assert.equal(lines.length, 30);
    assert.equal(readdirSync(join(data, 'images')).length, 30);
    const want = examples(1, 'train', 0, 30, 64);
    lines.forEach((l, i) => {
      assert.equal(l.text, want[i]!.caption);
      const s = parseCaption(l.text);
      assert.ok(s && !isHeldOut(s));
      const img = readImage(join(data, l.file_name));
      assert.equal(img.width, 64);
      assert.deepEqual(Buffer.from(img.data), Buffer.from(want[i]!.pixels));
    });
  });
});

describe('default image recipe: the adherence measure', () => {
  test('the checker accepts the scenes\' own renderings and rejects empty or wrong pictures', async () => {
    const { evaluateAdherence, sampleGridSvg, summary } = await import('../recipes/default-image/evaluate.ts');
    const { render, layout, parseCaption: parse, COLORS } = await import('../recipes/default-image/scenes.ts');
    const { mulberry32 } = await import('../recipes/default-model/corpus.ts');
    const truth = evaluateAdherence((prompt, seed) => {
      const s = parse(prompt)!;
      return { width: 64, height: 64, data: render(s, layout(s, 64, mulberry32(seed)), 64) };
    }, 40);
    assert.equal(truth.prompts, 40);
    assert.ok(truth.adherence >= 0.95, summary(truth));
    assert.ok(truth.relation >= 0.95, summary(truth));
    // A plain background of the right colour: right background, no objects.
    const empty = evaluateAdherence((prompt) => {
      const c = COLORS[parse(prompt)!.background];
      const data = new Uint8Array(64 * 64 * 3);
      for (let i = 0; i < data.length; i++) data[i] = c[i % 3]!;
      return { width: 64, height: 64, data };
    }, 40);
    assert.equal(empty.adherence, 0);
    assert.equal(empty.background, 1);
    const svg = sampleGridSvg(truth.samples.slice(0, 4), 2);
    assert.match(svg, /<image [^>]*href="data:image\/png;base64,/);
    assert.ok(svg.includes(truth.samples[0]!.prompt.split(' ')[1]!));
  });
});
