// Starting `slipstream serve` as a child process and waiting until it answers /health: what the
// serving benchmark and the end-to-end tests need (and anyone scripting a server).

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1 (asked from the OS, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** What the server wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then the exit code once it has drained and exited. */
  stop(): Promise<number | null>;
  /** The value of a Prometheus metric without labels (NaN if absent). */
  metric(name: string): Promise<number>;
}

/** Spawns `slipstream serve <args> --port <free port>` and resolves once /health answers 200. */
export async function startServe(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<ServeProcess> {
  const port = await freePort();
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'slipstream.js');
  const child = spawn(process.execPath, [bin, 'serve', ...args, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = `http://127.0.0.1:${port}`;
  const proc: ServeProcess = {
    url,
    child,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.on('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
    metric: async (name) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(name + ' '));
      return Number(line?.split(' ')[1]);
    },
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`slipstream serve exited with code ${child.exitCode}: ${err.trim()}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return proc;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`slipstream serve did not answer /health within ${timeoutMs} ms: ${err.trim()}`);
}
