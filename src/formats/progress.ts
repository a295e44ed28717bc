// Progress for long jobs (downloads, conversion, training steps), drawn on stderr with
// cli-progress so stdout stays clean for the command's real output.
//
// A redrawing bar only makes sense on a terminal: piped into a CI log it would print a line
// per redraw. So on a non-TTY stream the bar is not drawn and stop() prints one summary line
// instead ("config.json: 1.2 MB in 0.4 s, 3.0 MB/s"). `enabled: false` prints nothing at all.

import cliProgress from 'cli-progress';

export interface Progress {
  /** Sets the amount done so far (bytes or items). */
  update(done: number): void;
  /** Adds `n` to the amount done. */
  increment(n: number): void;
  /** Ends the bar (or prints the summary line). Safe to call twice. */
  stop(): void;
}

export interface ProgressOptions {
  /** 'bytes' prints sizes in B/kB/MB/GB and a byte rate; 'items' plain counts and items/s; 'steps' counts and s/step. Default 'bytes'. */
  unit?: 'bytes' | 'items' | 'steps';
  /** true: always draw the bar; false: silent; default: draw on a TTY, else one line at stop(). */
  enabled?: boolean;
  /** Where to write; default process.stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** 1234567 -> '1.2 MB' (decimal units, as the hub shows sizes). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '? B';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

type Unit = NonNullable<ProgressOptions['unit']>;

function formatAmount(n: number, unit: Unit): string {
  return unit === 'bytes' ? formatBytes(n) : String(n);
}

function formatRate(perSecond: number, unit: Unit): string {
  if (unit === 'steps') return perSecond > 0 ? `${(1 / perSecond).toFixed(2)} s/step` : '? s/step';
  return unit === 'bytes' ? `${formatBytes(Math.round(perSecond))}/s` : `${perSecond.toFixed(1)} it/s`;
}

/**
 * A progress reporter for one job of `total` units (0 when the total is unknown).
 *
 *   const p = createProgress('model-00001.safetensors', size);
 *   for await (const chunk of body) { ...; p.increment(chunk.length); }
 *   p.stop();
 */
export function createProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const unit = opts.unit ?? 'bytes';
  const stream = opts.stream ?? process.stderr;
  const draw = opts.enabled ?? stream.isTTY === true;
  const silent = opts.enabled === false;
  const started = Date.now();
  const knownTotal = Number.isFinite(total) && total > 0 ? total : 0;
  let done = 0;
  let stopped = false;

  // The bar's own {value}/{total} would print raw numbers, so sizes and the rate travel as payload.
  const payload = () => {
    const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
    return {
      label,
      done: formatAmount(done, unit),
      size: knownTotal ? formatAmount(knownTotal, unit) : '?',
      speed: formatRate(done / seconds, unit),
    };
  };

  let bar: cliProgress.SingleBar | null = null;
  if (draw) {
    bar = new cliProgress.SingleBar({
      stream,
      format: '{label} [{bar}] {percentage}% | {done}/{size} | {speed} | ETA {eta_formatted}',
      barCompleteChar: '=',
      barIncompleteChar: '-',
      hideCursor: null,
      clearOnComplete: false,
      noTTYOutput: opts.enabled === true && stream.isTTY !== true,
      fps: 5,
      etaBuffer: 50,
    });
    // cli-progress divides by total; an unknown total shows an empty bar and '?' for the size.
    bar.start(knownTotal || 1, 0, payload());
  }

  const render = () => {
    if (bar) bar.update(knownTotal ? Math.min(done, knownTotal) : 0, payload());
  };

  return {
    update(n: number) {
      if (stopped) return;
      done = n;
      render();
    },
    increment(n: number) {
      if (stopped) return;
      done += n;
      render();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (bar) {
        render();
        bar.stop();
      } else if (!silent) {
        const seconds = (Date.now() - started) / 1000;
        const p = payload();
        stream.write(`${label}: ${p.done} in ${seconds.toFixed(1)} s, ${p.speed}\n`);
      }
    },
  };
}
