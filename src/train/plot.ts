// The loss curve as a PNG: training loss (and its moving average) and eval loss against the
// step, on the charts' raster (src/util/raster.ts).

import { Raster, type Rgb, formatTick, niceCeil } from '../util/raster.ts';

const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const LIGHT: Rgb = [170, 200, 230];
const BLUE: Rgb = [31, 119, 180];
const ORANGE: Rgb = [230, 110, 20];

export interface LossPoint {
  step: number;
  loss: number;
  evalLoss?: number;
}

export function plotLossCurve(history: readonly LossPoint[], caption: string): Buffer {
  const W = 900, H = 520;
  const r = new Raster(W, H);
  const title = 'loss';
  r.text((W - Raster.textWidth(title, 2)) / 2, 12, title, INK, 2);
  const left = 70, right = W - 25, top = 60, bottom = H - 75;
  const pts = history.filter((p) => Number.isFinite(p.loss));
  const maxStep = Math.max(1, ...pts.map((p) => p.step));
  const ys = pts.flatMap((p) => (p.evalLoss !== undefined ? [p.loss, p.evalLoss] : [p.loss]));
  const ymax = niceCeil(Math.max(0, ...ys));
  const xOf = (s: number) => left + (s / maxStep) * (right - left);
  const yOf = (v: number) => bottom - (Math.max(0, v) / ymax) * (bottom - top);
  for (let t = 0; t <= 5; t++) {
    const v = (ymax * t) / 5;
    r.line(left, yOf(v), right, yOf(v), GRID);
    const lab = formatTick(v);
    r.text(left - 6 - Raster.textWidth(lab, 1), yOf(v) - 3, lab, INK, 1);
  }
  for (let t = 0; t <= 5; t++) {
    const s = Math.round((maxStep * t) / 5);
    r.line(xOf(s), bottom, xOf(s), bottom + 4, INK);
    const lab = formatTick(s);
    r.text(xOf(s) - Raster.textWidth(lab, 1) / 2, bottom + 8, lab, INK, 1);
  }
  r.text((left + right) / 2 - Raster.textWidth('step', 1) / 2, bottom + 24, 'step', INK, 1);
  r.line(left, top, left, bottom, INK, 2);
  r.line(left, bottom, right, bottom, INK, 2);

  const curve = (xs: number[], vs: number[], c: Rgb, thick: number, dots: boolean) => {
    for (let i = 0; i < xs.length; i++) {
      if (i > 0) r.line(xOf(xs[i - 1]!), yOf(vs[i - 1]!), xOf(xs[i]!), yOf(vs[i]!), c, thick);
      if (dots) r.dot(xOf(xs[i]!), yOf(vs[i]!), 3, c);
    }
  };
  curve(pts.map((p) => p.step), pts.map((p) => p.loss), LIGHT, 1, false);
  // moving average over ~2% of the run, so the trend is readable through the noise
  const win = Math.max(1, Math.round(pts.length / 50));
  const avg: number[] = [];
  let acc = 0;
  pts.forEach((p, i) => {
    acc += p.loss;
    if (i >= win) acc -= pts[i - win]!.loss;
    avg.push(acc / Math.min(i + 1, win));
  });
  curve(pts.map((p) => p.step), avg, BLUE, 2, false);
  const ev = pts.filter((p) => p.evalLoss !== undefined);
  curve(ev.map((p) => p.step), ev.map((p) => p.evalLoss!), ORANGE, 2, true);

  let lx = left + 10;
  const legend: [string, Rgb][] = [['train loss', LIGHT], [`train loss, mean of ${win}`, BLUE], ['eval loss', ORANGE]];
  for (const [name, c] of legend) {
    r.line(lx, 42, lx + 18, 42, c, 3);
    lx += 24 + r.text(lx + 24, 39, name, INK, 1) + 16;
  }
  const maxChars = Math.floor((W - 20) / 6);
  r.text(10, H - 30, caption.slice(0, maxChars), INK, 1);
  if (caption.length > maxChars) r.text(10, H - 18, caption.slice(maxChars, 2 * maxChars), INK, 1);
  return r.png();
}
