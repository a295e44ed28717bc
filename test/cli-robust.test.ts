// The CLI as a new user meets it: every mistake (a wrong path, a truncated or garbled file, a bad
// number, a port in use, a typo in a flag) is one line on stderr and a non-zero exit, never a
// stack trace or a hang; every subcommand's --help shows its defaults and an example.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');

function run(args: string[], timeoutMs = 60_000): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLIPSTREAM_THREADS: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

let root: string, tiny: string, busy: Server, busyPort: number;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'ss-cli-robust-'));
  tiny = join(root, 'tiny');
  writeRandomHfModel(tiny, { ...TINY_SPECS.llama, maxPosition: 128 }, 3);
  // a model whose weights file was cut short, and one with a broken config.json
  for (const [name, damage] of [
    ['truncated', (d: string) => truncateSync(join(d, 'model.safetensors'), 1000)],
    ['badconfig', (d: string) => writeFileSync(join(d, 'config.json'), '{"hidden_size": ')],
  ] as const) {
    const d = join(root, name);
    mkdirSync(d);
    for (const f of readdirSync(tiny)) copyFileSync(join(tiny, f), join(d, f));
    damage(d);
  }
  writeFileSync(join(root, 'garbage.gguf'), 'this is not a gguf file');
  writeFileSync(join(root, 'bad.json'), '{"model": ');
  busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  busyPort = (busy.address() as { port: number }).port;
});

after(() => {
  busy?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('CLI errors are one line and a non-zero exit', () => {
  const cases: [string, () => string[], RegExp][] = [
    ['generate -t 0', () => ['generate', '-m', tiny, '-p', 'hi', '-t', '0'], /--threads must be in \[1, 1024\], got 0/],
    ['generate -n abc', () => ['generate', '-p', 'hi', '-n', 'abc'], /--max-tokens must be an integer/],
    ['generate --temperature -1', () => ['generate', '-m', tiny, '-p', 'hi', '--temperature', '-1'], /--temperature must be >= 0/],
    ['generate --top-p 0', () => ['generate', '-m', tiny, '-p', 'hi', '--top-p', '0'], /--top-p must be in \(0, 1\]/],
    ['generate, no such model', () => ['generate', '-m', join(root, 'nope'), '-p', 'hi'], /no such file or directory/],
    ['generate, truncated weights', () => ['generate', '-m', join(root, 'truncated'), '-p', 'hi'], /model\.safetensors/],
    ['generate, broken config.json', () => ['generate', '-m', join(root, 'badconfig'), '-p', 'hi'], /config\.json: invalid JSON/],
    ['generate, garbage .gguf', () => ['generate', '-m', join(root, 'garbage.gguf'), '-p', 'hi'], /not a GGUF file/],
    ['generate without -p', () => ['generate'], /required option '-p, --prompt <text>' not specified/],
    ['generate, a typo in a flag', () => ['generate', '-p', 'hi', '--max-token', '3'], /unknown option '--max-token' \(Did you mean --max-tokens\?\)/],
    ['serve --port abc', () => ['serve', '--port', 'abc'], /--port must be an integer, got 'abc'/],
    ['serve --port 70000', () => ['serve', '--port', '70000'], /--port must be <= 65535/],
    ['serve -t 0', () => ['serve', '-t', '0'], /--threads must be >= 1/],
    ['serve, port in use', () => ['serve', '-m', tiny, '--port', String(busyPort)], /port \d+ is in use \(EADDRINUSE\)/],
    ['serve, an address not of this machine', () => ['serve', '-m', tiny, '--host', '192.0.2.1', '--port', '8000'], /EADDRNOTAVAIL/],
    ['serve, truncated weights', () => ['serve', '-m', join(root, 'truncated'), '--port', '0'], /model\.safetensors/],
    ['convert, no such input', () => ['convert', join(root, 'nope'), join(root, 'o.gguf')], /no such file or directory/],
    ['convert, one argument', () => ['convert', tiny], /missing required argument 'output'/],
    ['convert --type q4', () => ['convert', tiny, join(root, 'o.gguf'), '--type', 'q4'], /--type must be one of f32, f16, q8_0, q4_k_m, .*got 'q4'/],
    ['convert, garbage .gguf', () => ['convert', join(root, 'garbage.gguf'), join(root, 'out')], /not a GGUF file/],
    ['train, no such config', () => ['train', '-c', join(root, 'nope.json')], /nope\.json/],
    ['train, broken config', () => ['train', '-c', join(root, 'bad.json')], /bad\.json/],
    ['train-tokenizer, no such data', () => ['train-tokenizer', '-d', join(root, 'nope.txt'), '-o', join(root, 'tok')], /nope\.txt/],
    ['an unknown command', () => ['frobnicate'], /unknown command 'frobnicate'/],
    ['info --bogus', () => ['info', '--bogus'], /unknown option '--bogus'/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = await run(args());
      assert.notEqual(r.status, 0, `${name}: exit ${r.status}\n${r.stderr}`);
      assert.notEqual(r.status, null, `${name}: hung (killed after 60 s)`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${name}: one line, got:\n${r.stderr}`);
      assert.match(lines[0]!, /^slipstream: error: /);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    });
  }

  it('port in use fails before the model loads, in about a second', async () => {
    const r = await run(['serve', '--port', String(busyPort)]); // the default model: a load would take longer
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^slipstream: error: port ${busyPort} is in use \\(EADDRINUSE\\) on 127\\.0\\.0\\.1`));
    assert.ok(r.ms < 20_000, `${r.ms} ms`);
  });
});

describe('--help', () => {
  const commands = [['serve'], ['generate'], ['convert'], ['train'], ['finetune'], ['train-tokenizer'], ['info'], ['bench', 'kernels'], ['bench', 'serve']];
  for (const c of commands) {
    it(`${c.join(' ')} --help: defaults shown, numbers as numbers, an example`, async () => {
      const r = await run([...c, '--help']);
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /\(default: "-?\d+(\.\d+)?"\)/, 'numeric defaults are unquoted');
      if (c[0] !== 'bench' || c[1] !== 'serve') assert.match(r.stdout, /\nExamples?:\n {2}\$ slipstream /);
    });
  }

  it('serve --help names its numeric defaults', async () => {
    const r = await run(['serve', '--help']);
    const flat = r.stdout.replace(/\s+/g, ' ');
    for (const d of ['--port <port> port to listen on (default: 8000)', '(default: 512)', '(default: 16)', '(default: 256)']) assert.ok(flat.includes(d), d);
    assert.match(flat, /--no-parent-watch/);
  });
});
