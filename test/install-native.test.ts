// scripts/install-native.mjs (the package's `install` step): builds the native core once, then
// skips while the sources and the Node ABI match; rebuilds when either changes or when forced.
// The compiler is stood in for by SLIPSTREAM_NATIVE_BUILD (a command that writes the addon).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
// @ts-expect-error: a plain .mjs script without types
import { decide, STAMP } from '../scripts/install-native.mjs';

const script = join(import.meta.dirname, '..', 'scripts', 'install-native.mjs');
let root: string;
const builds = () => readFileSync(join(root, 'builds.log'), 'utf8').split('\n').filter(Boolean).length;
// A fake build: writes build/Release/slipstream.node and counts itself.
const fakeBuild = `node -e "const f=require('fs');f.mkdirSync('build/Release',{recursive:true});f.writeFileSync('build/Release/slipstream.node','x');f.appendFileSync('builds.log','b\\n')"`;
const install = (...args: string[]) =>
  spawnSync(process.execPath, [script, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, SLIPSTREAM_NATIVE_BUILD: fakeBuild } });

before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-install-'));
  mkdirSync(join(root, 'native', 'src'), { recursive: true });
  writeFileSync(join(root, 'native', 'src', 'a.cc'), 'int a;\n');
  writeFileSync(join(root, 'binding.gyp'), '{}\n');
  writeFileSync(join(root, 'builds.log'), '');
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('install-native', () => {
  it('builds the first time, then skips with one line saying so', () => {
    const a = install();
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stderr, /building the native core \(no addon built yet\)/);
    assert.equal(builds(), 1);
    const b = install();
    assert.equal(b.status, 0, b.stderr);
    assert.equal(b.stderr.trim().split('\n').length, 1);
    assert.match(b.stderr, /native core is up to date/);
    assert.equal(builds(), 1);
  });

  it('rebuilds when a native source or binding.gyp changes', () => {
    writeFileSync(join(root, 'native', 'src', 'a.cc'), 'int a = 1;\n');
    assert.match(install().stderr, /native sources changed/);
    assert.equal(builds(), 2);
    assert.match(install().stderr, /up to date/);
    writeFileSync(join(root, 'binding.gyp'), '{"targets": []}\n');
    assert.match(install().stderr, /native sources changed/);
    assert.equal(builds(), 3);
  });

  it('rebuilds for another Node ABI, and when forced', () => {
    const stamp = JSON.parse(readFileSync(join(root, STAMP), 'utf8'));
    writeFileSync(join(root, STAMP), JSON.stringify({ ...stamp, modules: '1' }));
    assert.equal(decide(root).reason.startsWith('Node ABI changed'), true);
    assert.match(install().stderr, /Node ABI changed/);
    assert.equal(builds(), 4);
    assert.match(install('--force').stderr, /building the native core \(forced\)/);
    assert.equal(builds(), 5);
  });

  it('a missing stamp or addon means a build; a failed build exits non-zero and writes no stamp', () => {
    rmSync(join(root, STAMP));
    assert.equal(decide(root).build, true);
    rmSync(join(root, 'build'), { recursive: true });
    const r = spawnSync(process.execPath, [script, '--root', root], { encoding: 'utf8', env: { ...process.env, SLIPSTREAM_NATIVE_BUILD: 'node -e "process.exit(3)"' } });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /native build failed/);
    assert.equal(decide(root).reason, 'no addon built yet');
  });
});
