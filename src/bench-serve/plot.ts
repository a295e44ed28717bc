// The chart of a benchmark sweep: four panels (output throughput, then TTFT, ITL and end-to-end
// latency, median and p99) against the swept value, as a Vega-Lite chart rendered to PNG
// through src/util/chart.ts.

import { CHART_CONFIG, type TopLevelSpec, chartSvg, svgToPng } from '../util/chart.ts';

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

const BLUE = '#1f77b4';
const ORANGE = '#e66e14';

/** The Vega-Lite spec of a sweep: a 2 x 2 grid of panels, each with its own y scale from 0. */
export function sweepSpec(points: SweepPoint[], xLabel: string, caption: string): TopLevelSpec {
  const panels = ['output tokens/s', 'TTFT (ms)', 'ITL (ms)', 'E2E latency (ms)'];
  const rows: { x: string; panel: string; stat: string; value: number }[] = [];
  const add = (x: string, panel: string, stat: string, value: number) => {
    if (Number.isFinite(value)) rows.push({ x, panel, stat, value });
  };
  for (const p of points) {
    add(p.x, panels[0]!, 'output tokens/s', p.outputThroughput);
    add(p.x, panels[1]!, 'median', p.ttftMedian);
    add(p.x, panels[1]!, 'p99', p.ttftP99);
    add(p.x, panels[2]!, 'median', p.itlMedian);
    add(p.x, panels[2]!, 'p99', p.itlP99);
    add(p.x, panels[3]!, 'median', p.e2elMedian);
    add(p.x, panels[3]!, 'p99', p.e2elP99);
  }
  const stats = ['output tokens/s', 'median', 'p99'];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'serving benchmark', subtitle: caption },
    config: { ...CHART_CONFIG, header: { labelFontSize: 13, labelFontWeight: 'bold', title: null } },
    data: { values: rows },
    columns: 2,
    facet: { field: 'panel', type: 'nominal', sort: panels, title: null },
    spec: {
      width: 380,
      height: 220,
      mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'x', type: 'ordinal', sort: points.map((p) => p.x), title: xLabel, axis: { labelAngle: 0 } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: true } },
        color: { field: 'stat', type: 'nominal', scale: { domain: stats, range: [BLUE, BLUE, ORANGE] } },
        strokeDash: { field: 'stat', type: 'nominal', scale: { domain: stats, range: [[1, 0], [1, 0], [6, 4]] } },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** The sweep chart as PNG bytes. */
export async function plotSweep(points: SweepPoint[], xLabel: string, caption: string): Promise<Buffer> {
  return svgToPng(await chartSvg(sweepSpec(points, xLabel, caption)), 2);
}
