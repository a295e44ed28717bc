#!/usr/bin/env node
// The package's `install` step: builds the native core (node-gyp rebuild) only when it has to.
//
// npm runs `install` on every `npm install`, and `npx slipstream` in a checkout runs it again
// (npx links the checkout into its cache), so an unconditional `node-gyp rebuild` cost ~55 s on
// each. Here the addon is rebuilt only when build/Release/slipstream.node is missing or was built
// from other native sources (native/**, binding.gyp, node-addon-api's version) or for another
// Node ABI/platform than this one: a fingerprint of those is written next to the addon
// (build/slipstream-native.json) after each build. One line on stderr says which it did.
//
//   node scripts/install-native.mjs           build if needed (npm install)
//   node scripts/install-native.mjs --force   always rebuild (npm run build:native)
//   --root <dir>                              the package root (default: this script's parent)
//   SLIPSTREAM_NATIVE_BUILD=<command>         the build command (default: node-gyp rebuild);
//                                             tests use it to stand in for the compiler

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ADDON = join('build', 'Release', 'slipstream.node');
export const STAMP = join('build', 'slipstream-native.json');

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** What the addon depends on: a hash of the native sources and the Node ABI it is built for. */
export function fingerprint(root) {
  const h = createHash('sha256');
  const files = [join(root, 'binding.gyp'), ...listFiles(join(root, 'native'))].filter((f) => existsSync(f)).sort();
  for (const f of files) {
    h.update(relative(root, f).split(sep).join('/'));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  let addonApi = 'none';
  try {
    addonApi = JSON.parse(readFileSync(join(root, 'node_modules', 'node-addon-api', 'package.json'), 'utf8')).version;
  } catch {
    /* not installed yet: node-gyp will fail with its own message */
  }
  return {
    sources: h.digest('hex'),
    files: files.length,
    nodeAddonApi: addonApi,
    modules: process.versions.modules,
    napi: process.versions.napi,
    platform: process.platform,
    arch: process.arch,
  };
}

/**
 * Whether to build, and why: 'force', 'no addon', 'no stamp', 'sources changed', 'Node ABI changed'
 * (modules/platform/arch), 'node-addon-api changed'; or null when the addon is up to date.
 */
export function decide(root, { force = false } = {}) {
  const fp = fingerprint(root);
  if (force) return { build: true, reason: 'forced', fp };
  if (!existsSync(join(root, ADDON))) return { build: true, reason: 'no addon built yet', fp };
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(root, STAMP), 'utf8'));
  } catch {
    return { build: true, reason: 'no build stamp (built before stamps, or by hand)', fp };
  }
  if (stamp.modules !== fp.modules || stamp.platform !== fp.platform || stamp.arch !== fp.arch) {
    return { build: true, reason: `Node ABI changed (built for modules ${stamp.modules} ${stamp.platform}-${stamp.arch}, this is ${fp.modules} ${fp.platform}-${fp.arch})`, fp };
  }
  if (stamp.sources !== fp.sources) return { build: true, reason: 'native sources changed', fp };
  if (stamp.nodeAddonApi !== fp.nodeAddonApi) return { build: true, reason: 'node-addon-api changed', fp };
  return { build: false, reason: 'up to date', fp };
}

/** Builds if needed; returns the exit code. `build` runs the build (default: node-gyp rebuild). */
export function installNative({ root, force = false, log = (l) => process.stderr.write(l + '\n'), build } = {}) {
  const d = decide(root, { force });
  if (!d.build) {
    log(`slipstream: native core is up to date (${ADDON}, Node ABI ${d.fp.modules}); skipping the build (npm run build:native forces one)`);
    return 0;
  }
  log(`slipstream: building the native core (${d.reason}); this takes about a minute`);
  const t0 = Date.now();
  const cmd = process.env.SLIPSTREAM_NATIVE_BUILD || 'node-gyp rebuild';
  const code = build ? build() : (spawnSync(cmd, { cwd: root, stdio: 'inherit', shell: true }).status ?? 1);
  if (code !== 0) {
    log(`slipstream: native build failed (${cmd} exited ${code}); see the output above`);
    return code;
  }
  if (!existsSync(join(root, ADDON))) {
    log(`slipstream: the build finished but ${ADDON} is missing`);
    return 1;
  }
  mkdirSync(dirname(join(root, STAMP)), { recursive: true });
  writeFileSync(join(root, STAMP), JSON.stringify({ ...d.fp, node: process.version, builtAt: new Date().toISOString() }, null, 2) + '\n');
  log(`slipstream: built the native core in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--root');
  const root = at >= 0 ? resolve(args[at + 1] ?? '.') : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
    process.stderr.write(`slipstream: --root ${root} is not a directory\n`);
    process.exit(2);
  }
  process.exitCode = installNative({ root, force: args.includes('--force') });
}
