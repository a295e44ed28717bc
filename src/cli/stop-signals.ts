// SIGTERM / SIGINT during a training run (`train`, `finetune`, `train-image`): the first signal is
// recorded and the run's loop checks it before each step, so the run ends with a checkpoint at
// the step reached, its plot and a summary line (exit 0); a second signal exits at once
// (143 / 130), without a checkpoint.

/** Traps the stop signals until dispose(); `command` names the command in its messages. */
export function trapStopSignals(command: string): { stopped: () => NodeJS.Signals | null; dispose: () => void } {
  let got: NodeJS.Signals | null = null;
  const on = (sig: NodeJS.Signals) => {
    if (got !== null) {
      process.stderr.write(`slipstream ${command}: second ${sig}, exiting without a checkpoint\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    got = sig;
    process.stderr.write(`\nslipstream ${command}: ${sig}: stopping after this step (checkpoint, plot, summary); send it again to exit at once\n`);
  };
  process.on('SIGTERM', on);
  process.on('SIGINT', on);
  return {
    stopped: () => got,
    dispose: () => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
    },
  };
}
