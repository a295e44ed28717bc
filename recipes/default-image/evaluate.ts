// Prompt adherence of a text-to-image model on the scene grammar, measured by the deterministic
// checker of scenes.ts: for held-out captions (combinations never seen in training), generate a
// picture, detect its background and objects, and count the pictures whose background, colours
// and shapes are right (adheres()); counts and relations are reported beside it.
//
//   node --import tsx recipes/default-image/evaluate.ts [--model models/default-image] [--n 100]
//        [--steps 20] [--guidance 5] [--seed 1] [--grid grid.png] [--json report.json]
//
// The grid is a picture a person can read: each sample with its prompt under it and a mark for
// whether the checker accepted it.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { encodePng, type RgbImage } from '../../src/formats/image.ts';
import { svgToPng } from '../../src/util/chart.ts';
import { adheres, examples, parseCaption, score, type Scene, type Score } from './scenes.ts';

/** Makes one picture for a prompt (a pipeline, or in tests a stand-in). */
export type Generate = (prompt: string, seed: number) => RgbImage;

export interface Sample {
  prompt: string;
  seed: number;
  image: RgbImage;
  score: Score;
  adheres: boolean;
}

export interface AdherenceReport {
  prompts: number;
  /** Fraction of pictures with the right background, colours and shapes (the measure). */
  adherence: number;
  background: number;
  colorsAndShapes: number;
  counts: number;
  /** Among two-group prompts. */
  relation: number;
  samples: Sample[];
}

/** Held-out prompts `0 .. n-1` (fixed by the seed), one picture each. */
export function heldOutPrompts(n: number, seed = 1): { prompt: string; scene: Scene }[] {
  return examples(seed, 'heldout', 0, n, 64).map((e) => ({ prompt: e.caption, scene: e.scene }));
}

export function evaluateAdherence(gen: Generate, n: number, opts: { seed?: number; onSample?: (i: number, s: Sample) => void } = {}): AdherenceReport {
  const seed = opts.seed ?? 1;
  const samples: Sample[] = [];
  heldOutPrompts(n, seed).forEach(({ prompt, scene }, i) => {
    const image = gen(prompt, seed + i);
    if (image.width !== image.height) throw new Error(`evaluate: the checker takes square pictures, got ${image.width}x${image.height}`);
    const sc = score(image.data, image.width, scene);
    const s = { prompt, seed: seed + i, image, score: sc, adheres: adheres(sc) };
    samples.push(s);
    opts.onSample?.(i, s);
  });
  const frac = (f: (s: Sample) => boolean, among = samples) => (among.length ? among.filter(f).length / among.length : 0);
  const pairs = samples.filter((s) => (parseCaption(s.prompt)?.groups.length ?? 0) === 2);
  return {
    prompts: samples.length,
    adherence: frac((s) => s.adheres),
    background: frac((s) => s.score.background),
    colorsAndShapes: frac((s) => s.score.colorsAndShapes),
    counts: frac((s) => s.score.counts),
    relation: frac((s) => s.score.relation, pairs),
    samples,
  };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Word-wraps a prompt into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(' ')) {
    if (line && line.length + 1 + w.length > width) { lines.push(line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines;
}

/** A grid of samples with their prompts (SVG; pictures shown at `cell` pixels, nearest-neighbour). */
export function sampleGridSvg(samples: readonly Sample[], cols = 5, cell = 160): string {
  const rows = Math.ceil(samples.length / cols);
  const textH = 58, pad = 10;
  const W = cols * (cell + pad) + pad, H = rows * (cell + textH + pad) + pad;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  samples.forEach((s, i) => {
    const x = pad + (i % cols) * (cell + pad), y = pad + Math.floor(i / cols) * (cell + textH + pad);
    const png = encodePng(s.image).toString('base64');
    parts.push(`<image x="${x}" y="${y}" width="${cell}" height="${cell}" image-rendering="pixelated" style="image-rendering:pixelated" href="data:image/png;base64,${png}"/>`);
    parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="none" stroke="${s.adheres ? '#2a9d3a' : '#d62828'}" stroke-width="3"/>`);
    wrap((s.adheres ? '✓ ' : '✗ ') + s.prompt, 30).slice(0, 4).forEach((l, k) => {
      parts.push(`<text x="${x}" y="${y + cell + 13 + k * 13}" font-family="DejaVu Sans" font-size="11" fill="#222">${esc(l)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function summary(r: AdherenceReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  return `${r.prompts} held-out prompts: adherence (background, colours and shapes) ${pct(r.adherence)}; background ${pct(r.background)}, colours and shapes ${pct(r.colorsAndShapes)}, counts ${pct(r.counts)}, relations ${pct(r.relation)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'models/default-image' },
      n: { type: 'string', default: '100' },
      steps: { type: 'string', default: '20' },
      guidance: { type: 'string', default: '5' },
      scheduler: { type: 'string' },
      seed: { type: 'string', default: '1' },
      grid: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const { StableDiffusionPipeline } = await import('../../src/diffusion/pipeline.ts');
  const { cpuBackend } = await import('../../src/tensor/cpu.ts');
  const pipe = StableDiffusionPipeline.load(values.model!, cpuBackend());
  const steps = Number(values.steps), guidance = Number(values.guidance);
  const t0 = Date.now();
  const report = evaluateAdherence(
    (prompt, seed) => pipe.generate({ prompt, seed, steps, guidance, scheduler: values.scheduler }).images[0]!,
    Number(values.n),
    { seed: Number(values.seed), onSample: (i, s) => process.stderr.write(`\r${i + 1}/${values.n} ${s.adheres ? 'ok  ' : 'miss'} ${s.prompt.padEnd(80)}`) },
  );
  process.stderr.write('\n');
  console.log(`${summary(report)} (${values.model}, ${steps} steps, guidance ${guidance}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (values.grid) {
    writeFileSync(values.grid, await svgToPng(sampleGridSvg(report.samples.slice(0, 20)), 1));
    console.log(`grid -> ${values.grid}`);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ ...report, samples: report.samples.map((s) => ({ prompt: s.prompt, seed: s.seed, adheres: s.adheres, score: { ...s.score, objects: undefined } })) }, null, 2));
}
