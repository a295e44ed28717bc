// The loss curve: training loss (and its moving average) and eval loss against the step, as a
// Vega-Lite chart (src/util/chart.ts) written as PNG with an SVG next to it. The legend lists
// only the curves that are drawn: no eval entry for a run without evaluations.

import { CHART_CONFIG, type TopLevelSpec, chartSvg, svgToPng, writeChart } from '../util/chart.ts';

export interface LossPoint {
  step: number;
  loss: number;
  evalLoss?: number;
}

const LIGHT = '#aac8e6';
const BLUE = '#1f77b4';
const ORANGE = '#e66e14';

/** The Vega-Lite spec of a loss curve. */
export function lossCurveSpec(history: readonly LossPoint[], caption: string): TopLevelSpec {
  const pts = history.filter((p) => Number.isFinite(p.loss));
  // moving average over ~2% of the run, so the trend is readable through the noise
  const win = Math.max(1, Math.round(pts.length / 50));
  const rows: { step: number; loss: number; curve: string }[] = [];
  let acc = 0;
  const raw = 'train loss', mean = `train loss, mean of ${win}`, ev = 'eval loss';
  pts.forEach((p, i) => {
    acc += p.loss;
    if (i >= win) acc -= pts[i - win]!.loss;
    if (win > 1) rows.push({ step: p.step, loss: p.loss, curve: raw });
    rows.push({ step: p.step, loss: acc / Math.min(i + 1, win), curve: win > 1 ? mean : raw });
  });
  const evals = pts.filter((p) => p.evalLoss !== undefined && Number.isFinite(p.evalLoss));
  for (const p of evals) rows.push({ step: p.step, loss: p.evalLoss!, curve: ev });
  const curves: [string, string][] = [...(win > 1 ? [[raw, LIGHT], [mean, BLUE]] as [string, string][] : [[raw, BLUE]] as [string, string][]), ...(evals.length > 0 ? [[ev, ORANGE]] as [string, string][] : [])];
  const color = { field: 'curve', type: 'nominal' as const, scale: { domain: curves.map((c) => c[0]), range: curves.map((c) => c[1]) }, legend: { orient: 'top' as const, title: null } };
  const x = { field: 'step', type: 'quantitative' as const, title: 'step', scale: { domainMin: 0 }, axis: { tickMinStep: 1, format: 'd' } };
  const y = { field: 'loss', type: 'quantitative' as const, title: 'loss', scale: { zero: true } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'loss', subtitle: caption },
    width: 820,
    height: 380,
    config: CHART_CONFIG,
    data: { values: rows },
    layer: [
      {
        transform: [{ filter: { field: 'curve', oneOf: curves.filter((c) => c[0] !== ev).map((c) => c[0]) } }],
        mark: { type: 'line', strokeWidth: 1.5, interpolate: 'linear' },
        encoding: { x, y, color, strokeWidth: { value: 2 } },
      },
      ...(evals.length > 0
        ? [{
            transform: [{ filter: { field: 'curve', equal: ev } }],
            mark: { type: 'line' as const, point: { filled: true, size: 40 }, strokeWidth: 2 },
            encoding: { x, y, color },
          }]
        : []),
    ],
  };
}

/** The loss curve as PNG bytes. */
export async function plotLossCurve(history: readonly LossPoint[], caption: string): Promise<Buffer> {
  return svgToPng(await chartSvg(lossCurveSpec(history, caption)), 2);
}

/** Writes the loss curve to `path` (.png, with an .svg next to it; or .svg). */
export async function writeLossPlot(path: string, history: readonly LossPoint[], caption: string): Promise<string[]> {
  return writeChart(path, lossCurveSpec(history, caption));
}
