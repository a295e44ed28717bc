// The default image model's generated data and the checker that scores pictures against their
// captions (recipes/default-image/scenes.ts), and PNG/JPEG in and out (src/formats/image.ts).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import jpeg from 'jpeg-js';
import { decodeImage, encodePng, pngText, readImage, writePng } from '../src/formats/image.ts';
import { adheres, caption, COLORS, combination, examples, isHeldOut, parseCaption, randomScene, render, score, type Scene } from '../recipes/default-image/scenes.ts';
import { mulberry32 } from '../recipes/default-model/corpus.ts';

const SIZE = 64;

function blur(p: Uint8Array, size: number): Uint8Array {
  const o = new Uint8Array(p.length);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) {
        let s = 0, n = 0;
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy, xx = x + dx;
            if (yy < 0 || xx < 0 || yy >= size || xx >= size) continue;
            s += p[(yy * size + xx) * 3 + c]!;
            n++;
          }
        o[(y * size + x) * 3 + c] = Math.round(s / n);
      }
  return o;
}

describe('scenes: captions', () => {
  test('caption and parseCaption are inverse on random scenes', () => {
    const r = mulberry32(1);
    for (let i = 0; i < 500; i++) {
      const s = randomScene(r);
      assert.deepEqual(parseCaption(caption(s)), s);
    }
  });

  test('captions read as English and the parser takes a user\'s spelling', () => {
    assert.equal(caption({ background: 'yellow', groups: [{ count: 2, color: 'red', shape: 'circle' }, { count: 1, color: 'blue', shape: 'square' }], relation: 'above' }), 'two red circles above a blue square on a yellow background');
    assert.equal(caption({ background: 'white', groups: [{ count: 1, color: 'orange', shape: 'triangle' }] }), 'an orange triangle on a white background');
    assert.deepEqual(parseCaption('  One  Green TRIANGLE on a black background '), { background: 'black', groups: [{ count: 1, color: 'green', shape: 'triangle' }] });
    assert.equal(parseCaption('a cat on a mat'), null);
    assert.equal(parseCaption('two red circles above on a blue background'), null);
  });

  test('held-out combinations: one in about ten, never drawn for training, counts do not matter', () => {
    const r = mulberry32(2);
    let held = 0;
    for (let i = 0; i < 4000; i++) held += +isHeldOut(randomScene(r));
    assert.ok(held > 250 && held < 550, `${held} of 4000 held out`);
    for (const e of examples(7, 'train', 0, 300, 16)) assert.equal(isHeldOut(e.scene), false, e.caption);
    for (const e of examples(7, 'heldout', 0, 100, 16)) assert.equal(isHeldOut(e.scene), true, e.caption);
    const s: Scene = { background: 'white', groups: [{ count: 1, color: 'red', shape: 'circle' }] };
    assert.equal(combination(s), combination({ ...s, groups: [{ ...s.groups[0], count: 3 }] }));
  });

  test('examples are reproducible from the seed and index', () => {
    const a = examples(3, 'train', 10, 3, SIZE), b = examples(3, 'train', 11, 2, SIZE);
    assert.equal(a[1]!.caption, b[0]!.caption);
    assert.deepEqual(a[2]!.pixels, b[1]!.pixels);
    assert.notDeepEqual(a[0]!.pixels, a[1]!.pixels);
  });
});

describe('scenes: the checker', () => {
  test('every rendered scene passes at 64x64: background, colours, shapes, counts, relation', () => {
    for (const split of ['train', 'heldout'] as const) {
      for (const e of examples(11, split, 0, 150, SIZE)) {
        const s = score(e.pixels, SIZE, e.scene);
        assert.ok(adheres(s) && s.counts && s.relation, `${e.caption}: ${JSON.stringify(s)}`);
      }
    }
  });

  test('still reads blurred pictures (as a generator draws them)', () => {
    const ex = examples(12, 'heldout', 0, 150, SIZE);
    const ok = ex.filter((e) => adheres(score(blur(e.pixels, SIZE), SIZE, e.scene))).length;
    assert.ok(ok / ex.length >= 0.95, `${ok} of ${ex.length}`);
  });

  test('a picture is not accepted for another caption', () => {
    const ex = examples(13, 'train', 0, 200, SIZE);
    for (let i = 0; i < ex.length; i++) {
      const other = ex[(i + 1) % ex.length]!;
      if (combination(other.scene) === combination(ex[i]!.scene)) continue;
      assert.equal(adheres(score(ex[i]!.pixels, SIZE, other.scene)), false, `${ex[i]!.caption} accepted as ${other.caption}`);
    }
  });

  test('wrong shape, wrong count, swapped relation and a flat picture are each caught', () => {
    const s: Scene = { background: 'yellow', groups: [{ count: 2, color: 'red', shape: 'circle' }, { count: 1, color: 'blue', shape: 'square' }], relation: 'above' };
    const placed = [
      { group: 0, cx: 16, cy: 14, size: 13 },
      { group: 0, cx: 44, cy: 16, size: 13 },
      { group: 1, cx: 32, cy: 46, size: 14 },
    ];
    const px = render(s, placed, SIZE);
    assert.ok(adheres(score(px, SIZE, s)));
    assert.equal(score(px, SIZE, { ...s, groups: [{ ...s.groups[0], shape: 'triangle' }, s.groups[1]!] }).colorsAndShapes, false);
    assert.equal(score(px, SIZE, { ...s, groups: [{ ...s.groups[0], count: 3 }, s.groups[1]!] }).counts, false);
    assert.equal(score(px, SIZE, { ...s, relation: 'below' }).relation, false);
    assert.equal(score(px, SIZE, { ...s, background: 'green' }).background, false);
    const flat = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < SIZE * SIZE; i++) flat.set(COLORS.yellow, i * 3);
    const f = score(flat, SIZE, s);
    assert.equal(f.background, true);
    assert.equal(f.colorsAndShapes, false);
    assert.equal(f.objects.length, 0);
  });
});

describe('image files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ss-image-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('PNG round trip keeps the pixels and the text chunks', () => {
    const [e] = examples(1, 'train', 0, 1, 48);
    const file = join(dir, 'a.png');
    writePng(file, { width: 48, height: 48, data: e!.pixels }, { parameters: `${e!.caption}\nSteps: 20, Seed: 1`, Software: 'slipstream' });
    const back = readImage(file);
    assert.equal(back.width, 48);
    assert.deepEqual(back.data, e!.pixels);
    const bytes = encodePng({ width: 48, height: 48, data: e!.pixels }, { parameters: 'caf\u00e9 \u2603' });
    assert.deepEqual(pngText(bytes), { parameters: 'caf\u00e9 ?' });
    assert.deepEqual(pngText(encodePng(back, { a: '1', b: '2' })), { a: '1', b: '2' });
  });

  test('JPEG input decodes to RGB', () => {
    const w = 40, h = 24, rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([200, 60, 30, 255], i * 4);
    const bytes = jpeg.encode({ width: w, height: h, data: rgba }, 95).data;
    const img = decodeImage(bytes, 'in.jpg');
    assert.equal(img.width, w);
    assert.equal(img.height, h);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(img.data[c]! - [200, 60, 30][c]!) <= 4, `channel ${c}: ${img.data[c]}`);
  });

  test('bad files get errors naming the file and the problem', () => {
    const d = mkdtempSync(join(tmpdir(), 'ss-image-bad-'));
    try {
      assert.throws(() => readImage(join(d, 'missing.png')), /missing\.png: cannot read the image \(no such file\)/);
      const txt = join(d, 'notes.png');
      writeFileSync(txt, 'hello, not a picture');
      assert.throws(() => readImage(txt), /notes\.png: not a PNG or JPEG file/);
      const png = encodePng({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3) });
      const cut = join(d, 'cut.png');
      writeFileSync(cut, png.subarray(0, png.length - 30));
      assert.throws(() => readImage(cut), /cut\.png: cannot decode the PNG/);
      const jp = join(d, 'cut.jpg');
      writeFileSync(jp, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2]));
      assert.throws(() => readImage(jp), /cut\.jpg: cannot decode the JPEG/);
      assert.throws(() => encodePng({ width: 2, height: 2, data: new Uint8Array(5) }), /5 bytes for a 2x2 RGB image/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
