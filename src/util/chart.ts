// Charts: a Vega-Lite spec compiled by vega-lite, rendered to SVG by vega (headless, no
// canvas), rasterized to PNG by resvg (@resvg/resvg-js, prebuilt binaries from npm). Text needs
// a font file: DejaVu Sans from Debian's fonts-dejavu-core when present (.ci/run installs it),
// else whatever the system has; with no font at all the PNG has no text and we say so once.

import { existsSync, writeFileSync } from 'node:fs';

/**
 * A Vega-Lite spec (https://vega.github.io/vega-lite/docs/spec.html), checked by vega-lite's
 * compile() at run time. vega-lite's package.json has only an "exports" map, which the import-
 * graph checker (madge, test/layering.test.ts) cannot resolve: the module is named through a
 * constant here, and its compile() typed by hand.
 */
export type TopLevelSpec = Record<string, unknown>;
const VEGA_LITE = 'vega-lite';
type VegaLite = { compile(spec: TopLevelSpec): { spec: import('vega').Spec } };

export const CHART_FONT = 'DejaVu Sans';
const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf',
];

/** The common look of our charts (white background, DejaVu Sans, light grid). */
export const CHART_CONFIG = {
  background: 'white',
  font: CHART_FONT,
  padding: 12,
  title: { fontSize: 16, subtitleFontSize: 11, subtitleColor: '#555', anchor: 'start' as const, offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, labelLimit: 0, orient: 'top' as const, title: null, symbolStrokeWidth: 3 },
  view: { stroke: null },
};

/** Vega-Lite spec -> SVG text. */
export async function chartSvg(spec: TopLevelSpec): Promise<string> {
  const [{ compile }, vega] = await Promise.all([import(VEGA_LITE) as Promise<VegaLite>, import('vega')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

let warnedNoFont = false;

/** SVG text -> PNG bytes, at `scale` times the SVG's size. */
export async function svgToPng(svg: string, scale = 1): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const fontFiles = FONT_FILES.filter((f) => existsSync(f));
  if (fontFiles.length === 0 && !warnedNoFont) {
    warnedNoFont = true;
    process.stderr.write('slipstream: no DejaVu Sans font found (Debian: apt-get install fonts-dejavu-core); chart text may be missing\n');
  }
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { fontFiles, loadSystemFonts: fontFiles.length === 0, defaultFontFamily: CHART_FONT, sansSerifFamily: CHART_FONT },
  });
  return Buffer.from(r.render().asPng());
}

/**
 * Writes a chart: `path` ending in .png gets the PNG and an .svg next to it; ending in .svg gets
 * the SVG only. Returns the paths written.
 */
export async function writeChart(path: string, spec: TopLevelSpec): Promise<string[]> {
  const svg = await chartSvg(spec);
  if (path.toLowerCase().endsWith('.svg')) {
    writeFileSync(path, svg);
    return [path];
  }
  const svgPath = path.replace(/\.png$/i, '') + '.svg';
  writeFileSync(path, await svgToPng(svg, 2));
  writeFileSync(svgPath, svg);
  return [path, svgPath];
}
