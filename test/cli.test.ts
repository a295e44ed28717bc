// The `slipstream` command line as a user runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

describe('slipstream CLI', () => {
  it('--version prints the package version', () => {
    const r = run('--version');
    assert.equal(r.status, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it('--help lists the commands', () => {
    const r = run('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Usage: slipstream/);
    assert.match(r.stdout, /info/);
    assert.match(r.stdout, /bench/);
  });

  it('info reports the native core', () => {
    const r = run('info');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /native core: isa (avx512|avx2|portable)/);
  });

  it('an unknown command fails with a message and a non-zero exit', () => {
    const r = run('frobnicate');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });
});
