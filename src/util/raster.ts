// An RGB raster for charts, drawn without an image library: lines, dots and a 5x7 bitmap font,
// written out as PNG (png.ts); and the axis helpers the charts share (the benchmark sweep in
// src/bench-serve/plot.ts, the loss curve in src/train/plot.ts).

import { encodePng } from './png.ts';

export type Rgb = readonly [number, number, number];

// 5x7 glyphs, one string of 7 rows of 5 pixels each; lower case is drawn as upper case.
const G = (s: string) => s.split(' ').map((r) => parseInt(r, 2));
const FONT: Record<string, number[]> = {
  A: G('01110 10001 10001 11111 10001 10001 10001'), B: G('11110 10001 10001 11110 10001 10001 11110'),
  C: G('01110 10001 10000 10000 10000 10001 01110'), D: G('11100 10010 10001 10001 10001 10010 11100'),
  E: G('11111 10000 10000 11110 10000 10000 11111'), F: G('11111 10000 10000 11110 10000 10000 10000'),
  G: G('01110 10001 10000 10111 10001 10001 01111'), H: G('10001 10001 10001 11111 10001 10001 10001'),
  I: G('01110 00100 00100 00100 00100 00100 01110'), J: G('00111 00010 00010 00010 00010 10010 01100'),
  K: G('10001 10010 10100 11000 10100 10010 10001'), L: G('10000 10000 10000 10000 10000 10000 11111'),
  M: G('10001 11011 10101 10101 10001 10001 10001'), N: G('10001 10001 11001 10101 10011 10001 10001'),
  O: G('01110 10001 10001 10001 10001 10001 01110'), P: G('11110 10001 10001 11110 10000 10000 10000'),
  Q: G('01110 10001 10001 10001 10101 10010 01101'), R: G('11110 10001 10001 11110 10100 10010 10001'),
  S: G('01111 10000 10000 01110 00001 00001 11110'), T: G('11111 00100 00100 00100 00100 00100 00100'),
  U: G('10001 10001 10001 10001 10001 10001 01110'), V: G('10001 10001 10001 10001 10001 01010 00100'),
  W: G('10001 10001 10001 10101 10101 10101 01010'), X: G('10001 10001 01010 00100 01010 10001 10001'),
  Y: G('10001 10001 10001 01010 00100 00100 00100'), Z: G('11111 00001 00010 00100 01000 10000 11111'),
  '0': G('01110 10001 10011 10101 11001 10001 01110'), '1': G('00100 01100 00100 00100 00100 00100 01110'),
  '2': G('01110 10001 00001 00010 00100 01000 11111'), '3': G('11111 00010 00100 00010 00001 10001 01110'),
  '4': G('00010 00110 01010 10010 11111 00010 00010'), '5': G('11111 10000 11110 00001 00001 10001 01110'),
  '6': G('00110 01000 10000 11110 10001 10001 01110'), '7': G('11111 00001 00010 00100 01000 01000 01000'),
  '8': G('01110 10001 10001 01110 10001 10001 01110'), '9': G('01110 10001 10001 01111 00001 00010 01100'),
  ' ': G('00000 00000 00000 00000 00000 00000 00000'), '.': G('00000 00000 00000 00000 00000 01100 01100'),
  ',': G('00000 00000 00000 00000 01100 00100 01000'), ':': G('00000 01100 01100 00000 01100 01100 00000'),
  '/': G('00000 00001 00010 00100 01000 10000 00000'), '-': G('00000 00000 00000 11111 00000 00000 00000'),
  '(': G('00010 00100 01000 01000 01000 00100 00010'), ')': G('01000 00100 00010 00010 00010 00100 01000'),
  '%': G('11000 11001 00010 00100 01000 10011 00011'), _: G('00000 00000 00000 00000 00000 00000 11111'),
  '=': G('00000 00000 11111 00000 11111 00000 00000'), '+': G('00000 00100 00100 11111 00100 00100 00000'),
  '*': G('00000 00100 10101 01110 10101 00100 00000'), "'": G('01100 00100 01000 00000 00000 00000 00000'),
  '|': G('00100 00100 00100 00100 00100 00100 00100'), '$': G('00100 01111 10100 01110 00101 11110 00100'), '?': G('01110 10001 00001 00010 00100 00000 00100'),
};

export class Raster {
  readonly px: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    bg: Rgb = [255, 255, 255],
  ) {
    this.px = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.px.set(bg, i * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.px.set(c, (y * this.width + x) * 3);
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }

  /** A line `thick` pixels wide (Bresenham with a square pen); `dash` > 0 draws dash-on, dash-off. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1, dash = 0): void {
    x0 = Math.round(x0); y0 = Math.round(y0); x1 = Math.round(x1); y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0), dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    const off = Math.floor((thick - 1) / 2);
    for (let step = 0; ; step++) {
      if (dash === 0 || Math.floor(step / dash) % 2 === 0) this.rect(x0 - off, y0 - off, thick, thick, c);
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }

  dot(x: number, y: number, r: number, c: Rgb): void {
    for (let j = -r; j <= r; j++) for (let i = -r; i <= r; i++) if (i * i + j * j <= r * r) this.set(x + i, y + j, c);
  }

  /** Text in the 5x7 font at `scale`; returns the width drawn. */
  text(x: number, y: number, s: string, c: Rgb, scale = 1): number {
    let cx = x;
    for (const ch of s.toUpperCase()) {
      const g = FONT[ch] ?? FONT['?']!;
      for (let row = 0; row < 7; row++) for (let col = 0; col < 5; col++) if ((g[row]! >> (4 - col)) & 1) this.rect(cx + col * scale, y + row * scale, scale, scale, c);
      cx += 6 * scale;
    }
    return cx - x;
  }

  static textWidth(s: string, scale = 1): number {
    return s.length * 6 * scale;
  }

  /** The raster as a PNG file. */
  png(): Buffer {
    return encodePng(this.width, this.height, this.px);
  }
}

// ---- axes ------------------------------------------------------------------------------------

/** A round number >= v for the top of an axis (1, 2, 2.5, 5 times a power of ten). */
export function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * (1 - 1e-9)) return m * p;
  return 10 * p;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 10000) return `${+(v / 1000).toFixed(1)}K`;
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return `${+v.toFixed(1)}`;
  return `${+v.toPrecision(2)}`;
}
