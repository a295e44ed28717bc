// A training command (`train`, `train-image`) run as a child process and interrupted mid-run: the
// signal goes out once its metrics.jsonl has `steps` lines, for the clean-stop (SIGTERM) and
// crash-and-resume (SIGKILL) tests.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'slipstream.js');

/** Lines in `<out>/metrics.jsonl` (0 before it exists). */
export function loggedSteps(out: string): number {
  const f = join(out, 'metrics.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).length : 0;
}

/** Runs `slipstream ...args`, sends `signal` once `steps` steps are logged in `out`, and gives its exit code and stderr. */
export async function signalAfterSteps(args: readonly string[], out: string, steps: number, signal: NodeJS.Signals, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (loggedSteps(out) >= steps) {
        clearInterval(t);
        child.kill(signal);
        resolve();
      }
    }, 10);
    child.on('exit', () => {
      clearInterval(t);
      reject(new Error(`the run ended before ${signal}: ${stderr}`));
    });
  });
  return { code: await exited, stderr };
}
