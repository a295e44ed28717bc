// A PNG chart of a benchmark sweep: four panels of lines and dots on the raster of
// src/util/raster.ts (PNG through pngjs, src/util/png.ts).

import { formatTick, niceCeil, Raster, type Rgb } from '../util/raster.ts';

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
