// The default image model's data, generated here (nothing downloaded): captioned pictures of flat
// shapes, and the deterministic checker that scores a picture against its caption.
//
// A scene is a background colour and one or two groups of identical shapes; two groups stand in
// a relation (above, below, left of, right of):
//
//   "two red circles above a blue square on a yellow background"
//   "three green triangles on a white background"
//
// Every element the caption names is visible in the pixels, so a checker can tell whether a
// picture follows its prompt: the background is the commonest colour of the border; each
// remaining colour's connected regions are the objects, classified by how much of their bounding
// box they fill (square 1, circle pi/4, triangle 1/2); a relation compares the groups' centroids.
//
// Held-out captions: one scene *combination* in ten (the two groups' colours and shapes, the
// relation and the background, by a fixed hash) never appears in training, so the evaluation
// asks for combinations the model has not seen, made of parts it has.

import { mulberry32 } from '../default-model/corpus.ts';

export const COLORS = {
  red: [220, 38, 38],
  green: [34, 160, 60],
  blue: [37, 70, 225],
  yellow: [245, 215, 35],
  purple: [140, 50, 190],
  orange: [245, 135, 25],
  white: [245, 245, 245],
  black: [20, 20, 20],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Color = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as Color[];

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

export const RELATIONS = ['above', 'below', 'left of', 'right of'] as const;
export type Relation = (typeof RELATIONS)[number];

const NUMBER_WORDS = ['a', 'two', 'three'] as const;

export interface Group {
  readonly count: number; // 1..3
  readonly color: Color;
  readonly shape: Shape;
}

export interface Scene {
  readonly background: Color;
  readonly groups: readonly [Group] | readonly [Group, Group];
  /** How groups[0] stands to groups[1] (two groups only). */
  readonly relation?: Relation;
}

/** One placed object: centre and size in pixels (the side of its bounding box). */
export interface Placed {
  readonly group: number;
  readonly cx: number;
  readonly cy: number;
  readonly size: number;
}

// ---- captions ---------------------------------------------------------------------------

function groupText(g: Group): string {
  const n = g.count === 1 && /^[aeiou]/.test(g.color) ? 'an' : NUMBER_WORDS[g.count - 1];
  return `${n} ${g.color} ${g.shape}${g.count > 1 ? 's' : ''}`;
}

export function caption(s: Scene): string {
  const head = s.groups.length === 2 ? `${groupText(s.groups[0])} ${s.relation} ${groupText(s.groups[1])}` : groupText(s.groups[0]);
  return `${head} on a ${s.background} background`;
}

const GROUP_RE = `(an?|one|two|three) (${COLOR_NAMES.join('|')}) (circle|square|triangle)s?`;
const CAPTION_RE = new RegExp(`^${GROUP_RE}(?: (above|below|left of|right of) ${GROUP_RE})? on an? (${COLOR_NAMES.join('|')}) background$`);

/** The scene a caption describes, or null when the caption is outside this grammar. */
export function parseCaption(text: string): Scene | null {
  const m = CAPTION_RE.exec(text.trim().toLowerCase().replace(/\s+/g, ' '));
  if (!m) return null;
  const count = (w: string) => (w === 'a' || w === 'an' || w === 'one' ? 1 : w === 'two' ? 2 : 3);
  const g1: Group = { count: count(m[1]!), color: m[2] as Color, shape: m[3] as Shape };
  const background = m[8] as Color;
  if (!m[4]) return { background, groups: [g1] };
  const g2: Group = { count: count(m[5]!), color: m[6] as Color, shape: m[7] as Shape };
  return { background, groups: [g1, g2], relation: m[4] as Relation };
}

// ---- sampling scenes --------------------------------------------------------------------

/** FNV-1a over a string: the stable hash behind the held-out split. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The combination a scene belongs to: everything but the counts. */
export function combination(s: Scene): string {
  const g = s.groups.map((x) => `${x.color} ${x.shape}`).join(` ${s.relation ?? ''} `);
  return `${g} / ${s.background}`;
}

/** True for the one combination in ten kept out of training. */
export function isHeldOut(s: Scene): boolean {
  return fnv1a(combination(s)) % 10 === 0;
}

/**
 * A random scene: one group (40%) or two in a relation, colours all different from each other
 * and from the background. `split` keeps to training or held-out combinations.
 */
export function randomScene(rand: () => number, split: 'train' | 'heldout' | 'any' = 'any'): Scene {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (;;) {
    const background = pick(COLOR_NAMES);
    const colors = COLOR_NAMES.filter((c) => c !== background);
    const c1 = pick(colors);
    const g1: Group = { count: 1 + Math.floor(rand() * 3), color: c1, shape: pick(SHAPES) };
    let s: Scene;
    if (rand() < 0.4) s = { background, groups: [g1] };
    else {
      const g2: Group = { count: 1 + Math.floor(rand() * 3), color: pick(colors.filter((c) => c !== c1)), shape: pick(SHAPES) };
      s = { background, groups: [g1, g2], relation: pick(RELATIONS) };
    }
    if (split === 'any' || isHeldOut(s) === (split === 'heldout')) return s;
  }
}

/**
 * Positions for a scene's objects on a size x size canvas: each group in its own region (the
 * whole canvas, or the half its relation gives it), objects apart by at least a gap so each is
 * its own connected region.
 */
export function layout(s: Scene, size: number, rand: () => number): Placed[] {
  const W = size;
  type Box = { x0: number; y0: number; x1: number; y1: number };
  const regions: Box[] = [];
  if (s.groups.length === 1) regions.push({ x0: 0, y0: 0, x1: W, y1: W });
  else {
    const top = { x0: 0, y0: 0, x1: W, y1: W / 2 }, bottom = { x0: 0, y0: W / 2, x1: W, y1: W };
    const left = { x0: 0, y0: 0, x1: W / 2, y1: W }, right = { x0: W / 2, y0: 0, x1: W, y1: W };
    const [a, b] = s.relation === 'above' ? [top, bottom] : s.relation === 'below' ? [bottom, top] : s.relation === 'left of' ? [left, right] : [right, left];
    regions.push(a, b);
  }
  const margin = Math.max(1, Math.round(W / 32));
  const gap = Math.max(2, Math.round(W / 24));
  for (let attempt = 0; ; attempt++) {
    const placed: Placed[] = [];
    let ok = true;
    s.groups.forEach((g, gi) => {
      const r = regions[gi]!;
      const base = (W * (g.count === 3 ? 0.17 : 0.2)) * (s.groups.length === 2 ? 0.9 : 1.1);
      for (let k = 0; k < g.count && ok; k++) {
        let done = false;
        for (let t = 0; t < 200 && !done; t++) {
          const sz = Math.round(base * (0.85 + 0.3 * rand()));
          const half = sz / 2;
          const cx = r.x0 + margin + half + rand() * (r.x1 - r.x0 - 2 * margin - sz);
          const cy = r.y0 + margin + half + rand() * (r.y1 - r.y0 - 2 * margin - sz);
          if (placed.every((p) => Math.max(Math.abs(p.cx - cx) - (p.size + sz) / 2, Math.abs(p.cy - cy) - (p.size + sz) / 2) >= gap)) {
            placed.push({ group: gi, cx, cy, size: sz });
            done = true;
          }
        }
        if (!done) ok = false;
      }
    });
    if (ok) return placed;
    if (attempt > 50) throw new Error(`layout: cannot place "${caption(s)}" on ${W}x${W}`);
  }
}

// ---- rendering --------------------------------------------------------------------------

/** Is (x, y) (pixel units) inside the object? */
function inside(shape: Shape, p: Placed, x: number, y: number): boolean {
  const h = p.size / 2;
  const dx = x - p.cx, dy = y - p.cy;
  if (shape === 'square') return Math.abs(dx) <= h && Math.abs(dy) <= h;
  if (shape === 'circle') return dx * dx + dy * dy <= h * h;
  // Triangle, apex up: base along the bottom of the box, apex at the top middle.
  if (dy < -h || dy > h) return false;
  const halfWidth = (h * (dy + h)) / (2 * h); // 0 at the apex, h at the base
  return Math.abs(dx) <= halfWidth;
}

/**
 * The scene as RGB pixels, size x size, each pixel averaged over ss x ss samples (soft edges, as
 * a generated picture has).
 */
export function render(s: Scene, placed: readonly Placed[], size: number, ss = 4): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  const bg = COLORS[s.background];
  const acc = [0, 0, 0];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      acc[0] = acc[1] = acc[2] = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const px = x + (sx + 0.5) / ss, py = y + (sy + 0.5) / ss;
          let col: readonly number[] = bg;
          for (const p of placed) {
            const g = s.groups[p.group]!;
            if (inside(g.shape, p, px, py)) col = COLORS[g.color];
          }
          acc[0] += col[0]!;
          acc[1] += col[1]!;
          acc[2] += col[2]!;
        }
      }
      const o = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(acc[c]! / (ss * ss));
    }
  }
  return out;
}

/** One training or evaluation example. */
export interface Example {
  readonly scene: Scene;
  readonly caption: string;
  readonly pixels: Uint8Array; // size x size x 3
}

/** Examples `start .. start + n - 1` of a split, each reproducible from its index and the seed. */
export function examples(seed: number, split: 'train' | 'heldout', start: number, n: number, size: number): Example[] {
  const out: Example[] = [];
  for (let i = start; i < start + n; i++) {
    const rand = mulberry32((seed * 1_000_003 + i * 7919 + (split === 'heldout' ? 17 : 0)) >>> 0);
    const scene = randomScene(rand, split);
    out.push({ scene, caption: caption(scene), pixels: render(scene, layout(scene, size, rand), size) });
  }
  return out;
}

// ---- the checker ------------------------------------------------------------------------

export interface Detected {
  readonly color: Color;
  readonly shape: Shape;
  readonly area: number;
  readonly cx: number;
  readonly cy: number;
}

export interface Score {
  readonly background: boolean;
  /** Every named colour is there with the named shape, and no other colour is. */
  readonly colorsAndShapes: boolean;
  readonly counts: boolean;
  /** The relation between the groups holds (true for one-group scenes). */
  readonly relation: boolean;
  readonly detectedBackground: Color | null;
  readonly objects: readonly Detected[];
}

/** Nearest palette colour of each pixel, or -1 when none is within `maxDist` (RGB distance). */
function classify(pixels: Uint8Array, n: number, maxDist: number): Int8Array {
  const pal = COLOR_NAMES.map((c) => COLORS[c]);
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const r = pixels[i * 3]!, g = pixels[i * 3 + 1]!, b = pixels[i * 3 + 2]!;
    let best = -1, bd = maxDist * maxDist;
    for (let k = 0; k < pal.length; k++) {
      const d = (r - pal[k]![0]) ** 2 + (g - pal[k]![1]) ** 2 + (b - pal[k]![2]) ** 2;
      if (d < bd) (bd = d), (best = k);
    }
    out[i] = best;
  }
  return out;
}

/**
 * Shape of a region from its bounding box [x0, x1] x [y0, y1] and membership test: a triangle
 * (apex up) has its centroid two thirds of the way down; of the symmetric two, a square fills
 * the corners of its box and a circle leaves them empty.
 */
export function shapeOf(inRegion: (x: number, y: number) => boolean, x0: number, y0: number, x1: number, y1: number, cy: number): Shape {
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  if ((cy - y0) / h > 0.57) return 'triangle';
  const c = Math.max(1, Math.round(Math.min(w, h) / 5));
  let hit = 0;
  for (let dy = 0; dy < c; dy++) {
    for (let dx = 0; dx < c; dx++) {
      hit += +inRegion(x0 + dx, y0 + dy) + +inRegion(x1 - dx, y0 + dy) + +inRegion(x0 + dx, y1 - dy) + +inRegion(x1 - dx, y1 - dy);
    }
  }
  return hit / (4 * c * c) > 0.5 ? 'square' : 'circle';
}

/** The objects in a size x size RGB picture: background colour, then each region of another colour. */
export function detect(pixels: Uint8Array, size: number): { background: Color | null; objects: Detected[] } {
  const n = size * size;
  const cls = classify(pixels, n, 90);
  const border = new Array<number>(COLOR_NAMES.length).fill(0);
  for (let i = 0; i < size; i++) {
    for (const p of [i, (size - 1) * size + i, i * size, i * size + size - 1]) if (cls[p]! >= 0) border[cls[p]!]!++;
  }
  const bgIdx = border.indexOf(Math.max(...border));
  const background = border[bgIdx]! > 0 ? COLOR_NAMES[bgIdx]! : null;
  const label = new Int32Array(n).fill(-1); // region of each pixel
  const objects: Detected[] = [];
  // Regions smaller than a quarter of the smallest object drawn are noise or edge fringes.
  const minArea = Math.max(3, Math.round((size * 0.17 * 0.85) ** 2 * 0.25 * 0.5));
  const stack: number[] = [];
  for (let start = 0; start < n; start++) {
    const k = cls[start]!;
    if (label[start]! >= 0 || k < 0 || k === bgIdx) continue;
    let area = 0, interior = 0, sx = 0, sy = 0, x0 = size, y0 = size, x1 = -1, y1 = -1;
    stack.push(start);
    label[start] = start;
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % size, y = (p - x) / size;
      area++;
      sx += x;
      sy += y;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      let same = 0;
      for (const q of [x > 0 ? p - 1 : -1, x < size - 1 ? p + 1 : -1, y > 0 ? p - size : -1, y < size - 1 ? p + size : -1]) {
        if (q >= 0 && cls[q] === k) {
          same++;
          if (label[q]! < 0) {
            label[q] = start;
            stack.push(q);
          }
        }
      }
      if (same === 4) interior++;
    }
    // A soft edge between two colours can pass for a third (red over yellow reads as orange):
    // such fringes are thin rings with no pixel whose four neighbours share its colour.
    if (area < minArea || interior < Math.max(2, area / 8)) continue;
    const inRegion = (x: number, y: number) => label[y * size + x] === start;
    const shape = shapeOf(inRegion, x0, y0, x1, y1, sy / area + 0.5);
    objects.push({ color: COLOR_NAMES[k]!, shape, area, cx: sx / area + 0.5, cy: sy / area + 0.5 });
  }
  return { background, objects };
}

/** How well a picture follows a scene. */
export function score(pixels: Uint8Array, size: number, s: Scene): Score {
  const { background, objects } = detect(pixels, size);
  const named = new Set(s.groups.map((g) => g.color));
  const colorsAndShapes =
    objects.every((o) => named.has(o.color)) &&
    s.groups.every((g) => {
      const mine = objects.filter((o) => o.color === g.color);
      return mine.length > 0 && mine.filter((o) => o.shape === g.shape).length * 2 > mine.length;
    });
  const counts = s.groups.every((g) => objects.filter((o) => o.color === g.color).length === g.count);
  let relation = true;
  if (s.groups.length === 2) {
    const centre = (c: Color) => {
      const mine = objects.filter((o) => o.color === c);
      const a = mine.reduce((t, o) => t + o.area, 0);
      return a ? { x: mine.reduce((t, o) => t + o.cx * o.area, 0) / a, y: mine.reduce((t, o) => t + o.cy * o.area, 0) / a } : null;
    };
    const a = centre(s.groups[0].color), b = centre(s.groups[1].color);
    relation = !!a && !!b && (s.relation === 'above' ? a.y < b.y : s.relation === 'below' ? a.y > b.y : s.relation === 'left of' ? a.x < b.x : a.x > b.x);
  }
  return { background: background === s.background, colorsAndShapes, counts, relation, detectedBackground: background, objects };
}

/** The measure: background, colours and shapes all right. */
export function adheres(sc: Score): boolean {
  return sc.background && sc.colorsAndShapes;
}
