// A PNG chart of a benchmark sweep, drawn without an image library: an RGB raster with lines,
// dots and a 5x7 bitmap font, and a minimal PNG writer (signature, IHDR, one zlib IDAT with
// filter 0 on every row, IEND; each chunk with its CRC-32).

import { deflateSync } from 'node:zlib';

// ---- PNG -----------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as PNG and zlib use). */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  out.set(data, 8);
  // The CRC covers the type and the data, not the length.
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes 8-bit RGB pixels (row-major, 3 bytes each) as a PNG file. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`encodePng: ${rgb.length} bytes for ${width}x${height} RGB`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  // compression, filter and interlace methods: 0
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + width * 3)] = 0; // filter type None
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

// ---- raster and font -------------------------------------------------------------------------

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

  png(): Buffer {
    return encodePng(this.width, this.height, this.px);
  }
}

// ---- charts ----------------------------------------------------------------------------------

export interface Series {
  name: string;
  color: Rgb;
  dashed?: boolean;
  /** One y per x category (NaN: no point). */
  ys: number[];
}

const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];

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

/** One panel: categorical x (evenly spaced sweep values), linear y from 0, a legend under the title. */
export function drawPanel(r: Raster, x: number, y: number, w: number, h: number, title: string, xLabel: string, xs: string[], series: Series[]): void {
  const s = 2;
  r.text(x + Math.max(0, (w - Raster.textWidth(title, s)) / 2), y, title, INK, s);
  let lx = x + 60;
  const ly = y + 22;
  for (const se of series) {
    r.line(lx, ly + 3, lx + 18, ly + 3, se.color, 3, se.dashed ? 4 : 0);
    lx += 24 + r.text(lx + 24, ly, se.name, INK, 1) + 16;
  }
  const left = x + 60, right = x + w - 15, top = y + 45, bottom = y + h - 45;
  const all = series.flatMap((se) => se.ys).filter((v) => Number.isFinite(v));
  const ymax = niceCeil(Math.max(0, ...all));
  const yOf = (v: number) => bottom - (v / ymax) * (bottom - top);
  const xOf = (i: number) => (xs.length === 1 ? (left + right) / 2 : left + 20 + (i * (right - left - 40)) / (xs.length - 1));
  for (let t = 0; t <= 5; t++) {
    const v = (ymax * t) / 5;
    const yy = yOf(v);
    r.line(left, yy, right, yy, GRID);
    const lab = formatTick(v);
    r.text(left - 6 - Raster.textWidth(lab, 1), yy - 3, lab, INK, 1);
  }
  r.line(left, top, left, bottom, INK, 2);
  r.line(left, bottom, right, bottom, INK, 2);
  xs.forEach((lab, i) => {
    r.line(xOf(i), bottom, xOf(i), bottom + 4, INK);
    r.text(xOf(i) - Raster.textWidth(lab, s) / 2, bottom + 8, lab, INK, s);
  });
  r.text(x + (w - Raster.textWidth(xLabel, 1)) / 2, bottom + 30, xLabel, INK, 1);
  for (const se of series) {
    let prev: [number, number] | undefined;
    se.ys.forEach((v, i) => {
      if (!Number.isFinite(v)) return (prev = undefined);
      const p: [number, number] = [xOf(i), yOf(v)];
      if (prev) r.line(prev[0], prev[1], p[0], p[1], se.color, 2, se.dashed ? 5 : 0);
      r.dot(p[0], p[1], 3, se.color);
      prev = p;
    });
  }
}

export interface SweepPoint {
  x: string;
  outputThroughput: number;
  ttftMedian: number;
  ttftP99: number;
  itlMedian: number;
  itlP99: number;
  e2elMedian: number;
  e2elP99: number;
}

const BLUE: Rgb = [31, 119, 180];
const ORANGE: Rgb = [230, 110, 20];

/** Four panels: output throughput, then TTFT, ITL and end-to-end latency (median and p99) against the swept value. */
export function plotSweep(points: SweepPoint[], xLabel: string, caption: string): Buffer {
  const pw = 420, ph = 300;
  const r = new Raster(pw * 2 + 20, ph * 2 + 60);
  const xs = points.map((p) => p.x);
  const lat = (name: string, med: number[], p99: number[]): Series[] => [
    { name: `${name} median`, color: BLUE, ys: med },
    { name: `${name} p99`, color: ORANGE, ys: p99, dashed: true },
  ];
  drawPanel(r, 10, 10, pw, ph, 'output tok/s', xLabel, xs, [{ name: 'output tokens/s', color: BLUE, ys: points.map((p) => p.outputThroughput) }]);
  drawPanel(r, 10 + pw, 10, pw, ph, 'TTFT (ms)', xLabel, xs, lat('TTFT', points.map((p) => p.ttftMedian), points.map((p) => p.ttftP99)));
  drawPanel(r, 10, 10 + ph, pw, ph, 'ITL (ms)', xLabel, xs, lat('ITL', points.map((p) => p.itlMedian), points.map((p) => p.itlP99)));
  drawPanel(r, 10 + pw, 10 + ph, pw, ph, 'E2E latency (ms)', xLabel, xs, lat('E2EL', points.map((p) => p.e2elMedian), points.map((p) => p.e2elP99)));
  // The caption (label and hardware) along the bottom, cut to fit.
  const maxChars = Math.floor((r.width - 20) / 6);
  r.text(10, r.height - 30, caption.slice(0, maxChars), INK, 1);
  if (caption.length > maxChars) r.text(10, r.height - 18, caption.slice(maxChars, 2 * maxChars), INK, 1);
  return r.png();
}
