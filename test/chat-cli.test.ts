// `slipstream chat` as a user runs it: a conversation over pipes (the line protocol: replies on
// stdout, notes on stderr), history dropped to fit the context, /reset, /system, /exit, Ctrl-C
// stopping a reply (SIGINT over pipes, the Ctrl-C key through a real pseudo-terminal made by
// util-linux's `script`), and bad flags failing in one line.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeRandomHfModel } from '../src/models/random.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
const env = { ...process.env, SLIPSTREAM_THREADS: '2' };
const run = (args: string[], input: string) => spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', env, timeout: 120_000 });

let root: string, dir: string, noTemplate: string;
const spec = { arch: 'llama' as const, vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 128 };
const TEMPLATE = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-chat-'));
  dir = join(root, 'tiny');
  writeRandomHfModel(dir, spec, 11);
  const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  tc.chat_template = TEMPLATE;
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  noTemplate = join(root, 'plain');
  writeRandomHfModel(noTemplate, spec, 12);
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A running chat with its output collected; waitFor resolves when `re` matches stdout or stderr. */
class Live {
  out = '';
  err = '';
  readonly exited: Promise<number | null>;
  private waiters: { re: RegExp; on: 'out' | 'err'; resolve: () => void }[] = [];
  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8').on('data', (d: string) => ((this.out += d), this.check()));
    child.stderr.setEncoding('utf8').on('data', (d: string) => ((this.err += d), this.check()));
    this.exited = new Promise((r) => child.on('exit', (code) => r(code)));
  }
  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.re.test(w.on === 'out' ? this.out : this.err)) return true;
      w.resolve();
      return false;
    });
  }
  waitFor(on: 'out' | 'err', re: RegExp, ms = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} on ${on}; stdout: ${this.out.slice(-500)}\nstderr: ${this.err.slice(-500)}`)), ms);
      this.waiters.push({ re, on, resolve: () => (clearTimeout(t), resolve()) });
      this.check();
    });
  }
}

describe('slipstream chat over pipes', () => {
  it('answers each line, keeps the history, drops the oldest turns to fit the context and says so', () => {
    // 128-token context, 16-token replies: the third or fourth turn cannot keep the first.
    const lines = ['hello there', 'and then', 'tell me more', 'and more', '/exit', 'never read'];
    const r = run(['chat', '-m', dir, '-n', '16', '--temperature', '0', '--ignore-eos', '--verbose'], lines.join('\n') + '\n');
    assert.equal(r.status, 0, r.stderr);
    const turns = [...r.stderr.matchAll(/prompt (\d+) tokens \((\d+) from the prefix cache\) \| reply 16 tokens/g)];
    const prompts = turns.map((m) => Number(m[1]));
    assert.equal(prompts.length, 4, r.stderr);
    // The second turn reuses the first turn's KV blocks (whole 16-token blocks of its prompt).
    assert.equal(Number(turns[0]![2]), 0);
    assert.ok(Number(turns[1]![2]) >= 16, r.stderr);
    // The second prompt holds the first turn; a later one dropped it.
    assert.ok(prompts[1]! > prompts[0]! + 16, `prompts ${prompts}`);
    assert.match(r.stderr, /\(dropped the 2 oldest messages so the conversation fits the 128-token context\)/);
    for (const p of prompts) assert.ok(p + 16 <= 128, `prompts ${prompts}`);
    assert.match(r.stderr, /context 128 tokens, replies up to 16 tokens/);
  });

  it('the first reply is what `generate --chat` gives for the same message at temperature 0', () => {
    const c = run(['chat', '-m', dir, '-n', '20', '--temperature', '0', '--ignore-eos'], 'hello there\n');
    const g = spawnSync(process.execPath, [bin, 'generate', '-m', dir, '--chat', '-p', 'hello there', '-n', '20', '--temperature', '0', '--ignore-eos'], { encoding: 'utf8', env });
    assert.equal(c.status, 0, c.stderr);
    assert.equal(g.status, 0, g.stderr);
    assert.equal(c.stdout.trim(), g.stdout.trim());
  });

  it('/reset forgets the conversation, /system sets a system message, a seed reproduces a sampled reply', () => {
    const args = ['chat', '-m', dir, '-n', '12', '--temperature', '1', '--seed', '7', '--ignore-eos', '--verbose'];
    const one = run(args, 'hi\n');
    const r = run(args, 'hi\n/reset\nhi\n/system you are terse\nhi\n/system\n/nope\n/help\n');
    assert.equal(one.status, 0, one.stderr);
    assert.equal(r.status, 0, r.stderr);
    // Replies may hold newlines (a random model's bytes): compare whole outputs.
    assert.ok(r.stdout.startsWith(one.stdout + one.stdout), 'after /reset the same message with the same seed gives the same reply');
    const prompts = [...r.stderr.matchAll(/prompt (\d+) tokens/g)].map((m) => Number(m[1]));
    assert.equal(prompts.length, 3, r.stderr);
    assert.equal(prompts[0], prompts[1]);
    assert.ok(prompts[2]! > prompts[1]!, `the system message and the history are in the third prompt: ${prompts}`);
    assert.match(r.stderr, /\(conversation cleared\)/);
    assert.match(r.stderr, /\(system message set\)/);
    assert.match(r.stderr, /\(system message removed\)/);
    assert.match(r.stderr, /unknown command \/nope: \/help lists the commands/);
    assert.match(r.stderr, /\/reset {10}forget the conversation/);
  });

  it('a message longer than the context is refused without ending the chat', () => {
    const long = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const args = ['chat', '-m', dir, '-n', '20', '--temperature', '0', '--ignore-eos'];
    const r = run(args, `${long}\nhello there\n`);
    const plain = run(args, 'hello there\n');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /error: the message is too long: .* tokens and the context is 128/);
    assert.equal(r.stdout, plain.stdout);
  });

  it('a stop string ends a reply before it', () => {
    const args = ['chat', '-m', dir, '-n', '30', '--temperature', '0', '--ignore-eos'];
    const full = run(args, 'hello there\n').stdout.trimEnd();
    const stop = full.slice(12, 14);
    assert.ok(stop.trim().length > 0 && !full.slice(0, 12).includes(stop), JSON.stringify(full));
    const r = run([...args, '--stop', stop], 'hello there\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trimEnd(), full.slice(0, 12).trimEnd());
  });

  it('bad flags and a model without a chat template fail in one line', () => {
    for (const [args, re, code] of [
      [['--temperature', 'hot'], /--temperature must be a number, got 'hot'/, 2],
      [['--max-tokens', '0'], /--max-tokens must be >= 1/, 2],
      [['--presence-penalty', '3'], /--presence-penalty must be in \[-2, 2\]/, 2],
      [['--ctx-size', '1'], /--ctx-size must be >= 2/, 2],
    ] as const) {
      const r = run(['chat', '-m', dir, ...args], '');
      assert.equal(r.status, code, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const r = run(['chat', '-m', noTemplate], 'hi\n');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /has no chat template; use `slipstream generate`/);
  });

  it('SIGINT stops a streaming reply without leaving the chat (default model)', async () => {
    const live = new Live(spawn(process.execPath, [bin, 'chat', '-n', '400', '--ignore-eos', '--temperature', '0', '--verbose'], { env }));
    live.child.stdin.write('Once upon a time\n');
    await live.waitFor('out', /\S+ \S+ \S+/); // streaming has begun
    live.child.kill('SIGINT');
    await live.waitFor('err', /\(stopped\)/);
    await live.waitFor('err', /reply \d+ tokens/);
    const m = /reply (\d+) tokens/.exec(live.err);
    assert.ok(m && Number(m[1]) < 400, live.err);
    live.child.stdin.write('/reset\n/exit\n');
    assert.equal(await live.exited, 0, live.err);
    assert.match(live.err, /\(stopped\)[\s\S]*\(conversation cleared\)/);
  });
});

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

describe('slipstream chat in a terminal', { skip: hasScript ? false : 'util-linux `script` is not installed' }, () => {
  const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  /** The chat under `script`, which gives it a pseudo-terminal: our writes are keystrokes. */
  const start = (args: string[]) =>
    new Live(
      spawn('script', ['-qfec', [process.execPath, bin, 'chat', ...args].map(shellQuote).join(' '), '/dev/null'], {
        env: { ...env, TERM: 'dumb', COLUMNS: '200', LINES: '50' },
      }),
    );

  it('shows the >>> prompt, streams a reply, Ctrl-C stops it, Ctrl-C twice at the prompt leaves', async () => {
    const live = start(['-m', dir, '-n', '30', '--temperature', '0', '--ignore-eos']);
    await live.waitFor('out', />>> /);
    live.child.stdin.write('hello there\r');
    await live.waitFor('out', />>> [\s\S]*hello there[\s\S]*\n[\s\S]*>>> /);
    live.child.stdin.write('\x03');
    await live.waitFor('out', /Ctrl-C again or \/exit to leave/);
    live.child.stdin.write('\x03');
    assert.equal(await live.exited, 0, live.out);
  });

  it('Ctrl-C during a reply stops only the reply (default model)', async () => {
    const live = start(['-n', '400', '--temperature', '0', '--ignore-eos']);
    await live.waitFor('out', />>> /);
    live.child.stdin.write('Once upon a time\r');
    await live.waitFor('out', /Once upon a time[\r\n]+\S+ \S+ \S+ \S+/);
    live.child.stdin.write('\x03');
    await live.waitFor('out', /\(stopped\)[\s\S]*>>> /);
    live.child.stdin.write('/exit\r');
    assert.equal(await live.exited, 0, live.out);
  });
});
