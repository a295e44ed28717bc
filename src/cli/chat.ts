// `slipstream chat`: an interactive conversation with a model in the terminal.
//
// Each turn renders the whole conversation with the model's chat template and runs it through
// one serving Engine kept for the session (the same scheduler, sampler, penalties, stop strings
// and detokenizer as `serve`). Its prefix cache keeps the KV blocks of the previous turns, so a
// new turn computes only the new messages. The step loop yields to the event loop between steps,
// so Ctrl-C can stop a reply while it streams.
//
// The conversation must fit the context: prompt + the reply budget (--max-tokens). When it does
// not, the oldest user/assistant pairs are dropped (the system message stays) and a note says so.
//
// Reply text goes to stdout; notes, errors and the banner go to stderr, so `chat < questions.txt
// > answers.txt` keeps only the replies. On a terminal the prompt is `>>> `.

import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { EngineError, type FinishReason, type SamplingOptions } from '../engine/api.ts';
import { Engine } from '../engine/engine.ts';
import { applyChatTemplate, ChatTemplateError, type ChatMessage } from '../formats/chat-template.ts';
import type { Tokenizer } from '../formats/tokenizer.ts';
import { isKvDtype, KV_DTYPES, kvDtypeProblem, KvPool, type KvDType } from '../models/kv.ts';
import { defaultModelDir } from '../models/default.ts';
import { loadModel, LOAD_QUANTS, type LoadQuant } from '../models/load.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { UsageError } from '../errors.ts';
import { numFlag, parseSamplingFlags, type SamplingFlags } from './sampling-flags.ts';

export interface ChatCliOptions extends SamplingFlags {
  model?: string;
  system?: string;
  /** Context the conversation may fill (default: the model's, at most 4096). */
  ctxSize?: string;
  quantize?: string;
  lora?: string;
  threads?: string;
  kvDtype?: string;
  mmap?: boolean;
  /** One timing line per reply on stderr. */
  verbose?: boolean;
}

export interface ChatIo {
  input: Readable;
  output: Writable & { isTTY?: boolean };
  err: Writable;
  /** A terminal: line editing, the `>>> ` prompt, Ctrl-C read as a key. Default: input and output are TTYs. */
  terminal?: boolean;
}

const DEFAULT_MAX_TOKENS = 256;
const DEFAULT_CTX_CAP = 4096;
const EAGER_KV_BYTES = 512 * 1024 * 1024;
const HELP = `commands:
  /reset          forget the conversation (the system message stays)
  /system <text>  set the system message (/system alone removes it)
  /exit           leave (also /bye, Ctrl-D, or Ctrl-C twice at the prompt)
  /help           this list
Ctrl-C while a reply streams stops it.`;

/** A turn the model answers: the conversation it sees and what it may generate. */
interface Fitted {
  promptIds: number[];
  /** Messages dropped from the front of the history to make it fit. */
  dropped: number;
  maxTokens: number;
}

/**
 * The conversation and the engine behind it: render, fit to the context, generate. Kept apart
 * from the terminal so its rules (what is dropped, what is kept) are plain code.
 */
export class ChatSession {
  system: string | undefined;
  history: ChatMessage[] = [];
  readonly engine: Engine;
  readonly context: number;
  private seq = 0;
  private running: string | null = null;

  constructor(
    readonly tokenizer: Tokenizer,
    model: ConstructorParameters<typeof Engine>[0],
    readonly sampling: SamplingOptions,
    opts: { context: number; kvDtype?: KvDType; eosIds?: number[]; system?: string },
  ) {
    if (!tokenizer.chatTemplate) throw new UsageError('the model has no chat template (tokenizer_config.json chat_template, chat_template.jinja or GGUF tokenizer.chat_template); use `slipstream generate` for plain completion');
    const bs = 16;
    const numBlocks = Math.ceil(opts.context / bs);
    const kvDtype = opts.kvDtype ?? 'f32';
    const bytes = numBlocks * bs * KvPool.bytesPerToken(model.cfg, kvDtype);
    this.engine = new Engine(model, tokenizer, {
      numBlocks,
      blockSize: bs,
      kvDtype,
      kvPopulate: bytes <= EAGER_KV_BYTES ? true : 'background',
      maxSeqs: 1,
      maxBatchTokens: 256,
      prefixCaching: true, // the previous turns' blocks are reused by the next turn
      eosIds: opts.eosIds,
      maxContext: opts.context,
    });
    this.context = this.engine.maxContext;
    this.system = opts.system;
  }

  private render(history: ChatMessage[]): number[] {
    const messages = [...(this.system !== undefined ? [{ role: 'system', content: this.system }] : []), ...history];
    const t = this.tokenizer;
    const text = applyChatTemplate(t.chatTemplate!, messages, { addGenerationPrompt: true, bosToken: t.bosToken, eosToken: t.eosToken });
    return t.encode(text, { addSpecialTokens: false });
  }

  /**
   * The prompt for `user` after the history: the oldest pairs dropped until prompt + reply
   * budget fits the context. When the message alone leaves less room than the budget, the reply
   * is shortened; when it leaves none, a UsageError. Throws ChatTemplateError when the template
   * rejects the conversation.
   */
  fit(user: string): Fitted {
    const turn: ChatMessage = { role: 'user', content: user };
    const budget = this.sampling.maxTokens;
    let dropped = 0;
    for (;;) {
      const ids = this.render([...this.history.slice(dropped), turn]);
      if (ids.length + budget <= this.context) return { promptIds: ids, dropped, maxTokens: budget };
      if (dropped >= this.history.length) {
        // Nothing left to drop: the reply gets what room there is.
        if (ids.length < this.context) return { promptIds: ids, dropped, maxTokens: this.context - ids.length };
        throw new UsageError(`the message is too long: with the system message it takes ${ids.length} tokens and the context is ${this.context}`);
      }
      // Drop a user/assistant pair (templates that insist on alternating roles stay happy).
      dropped += this.history[dropped]?.role === 'user' && this.history[dropped + 1]?.role === 'assistant' ? 2 : 1;
    }
  }

  /**
   * Generates the reply to `user`, streaming its text to `onText`; `stopped()` is polled between
   * engine steps and stops the reply when true. The turn (with whatever was generated, if
   * stopped) joins the history.
   */
  async reply(
    user: string,
    onText: (t: string) => void,
    stopped: () => boolean,
    onStart?: (f: Fitted) => void,
  ): Promise<{ fitted: Fitted; text: string; finish: FinishReason; tokens: number; cachedTokens: number; seconds: number }> {
    const fitted = this.fit(user);
    if (fitted.dropped > 0) this.history.splice(0, fitted.dropped);
    onStart?.(fitted);
    const id = `chat-${++this.seq}`;
    this.engine.submit({ id, promptIds: fitted.promptIds, sampling: { ...this.sampling, maxTokens: fitted.maxTokens } });
    this.running = id;
    const t0 = performance.now();
    let text = '';
    let tokens = 0;
    let cachedTokens = 0;
    let leading = true;
    let finish: FinishReason | undefined;
    try {
      while (!finish) {
        if (stopped()) this.engine.abort(id);
        for (const ev of this.engine.step()) {
          if (ev.error) throw new Error(ev.error);
          if (ev.tokenId >= 0) tokens++;
          if (ev.cachedTokens !== undefined) cachedTokens = ev.cachedTokens;
          let piece = ev.text;
          // A reply reads from its first word: no leading blank or newline.
          if (leading && piece) {
            piece = piece.replace(/^\s+/, '');
            if (piece) leading = false;
          }
          if (piece) {
            text += piece;
            onText(piece);
          }
          if (ev.finishReason) finish = ev.finishReason;
        }
        if (!finish && !this.engine.hasWork()) throw new Error('the engine stopped before the reply finished');
        // Let input (Ctrl-C) in between steps.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = null;
    }
    this.history.push({ role: 'user', content: user }, { role: 'assistant', content: text });
    return { fitted, text, finish, tokens, cachedTokens, seconds: (performance.now() - t0) / 1000 };
  }

  reset(): void {
    this.history = [];
  }
}

/** Lines from a readline interface, one at a time (null at end of input). */
class LineQueue {
  private lines: string[] = [];
  private waiter: ((l: string | null) => void) | null = null;
  private closed = false;
  constructor(rl: Interface) {
    rl.on('line', (l) => this.push(l));
    rl.on('close', () => {
      this.closed = true;
      this.waiter?.(null);
      this.waiter = null;
    });
  }
  private push(l: string): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(l);
    } else this.lines.push(l);
  }
  next(): Promise<string | null> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((r) => (this.waiter = r));
  }
}

export async function chatCommand(o: ChatCliOptions, io: ChatIo = { input: process.stdin, output: process.stdout, err: process.stderr }): Promise<void> {
  if (o.quantize !== undefined && !(LOAD_QUANTS as readonly string[]).includes(o.quantize)) throw new UsageError(`--quantize supports ${LOAD_QUANTS.join(', ')}, got '${o.quantize}'`);
  if (o.kvDtype !== undefined && !isKvDtype(o.kvDtype)) throw new UsageError(`--kv-dtype must be ${KV_DTYPES.join(', ')}, got '${o.kvDtype}'`);
  const ctxFlag = o.ctxSize === undefined ? undefined : numFlag('ctx-size', o.ctxSize, 0, true);
  if (ctxFlag !== undefined && ctxFlag < 2) throw new UsageError(`--ctx-size must be >= 2, got ${ctxFlag}`);
  const sampling = parseSamplingFlags(o, DEFAULT_MAX_TOKENS);
  const be = cpuBackend();
  if (o.threads !== undefined) {
    const t = numFlag('threads', o.threads, 0, true);
    if (t < 1 || t > 1024) throw new UsageError(`--threads must be in [1, 1024], got ${t}`);
    be.setThreads(t);
  }
  const lm = await loadModel(o.model ?? defaultModelDir(), be, { quantize: o.quantize as LoadQuant | undefined, mmap: o.mmap !== false, lora: o.lora });
  const kvProblem = kvDtypeProblem(lm.config, (o.kvDtype as KvDType | undefined) ?? 'f32');
  if (kvProblem) throw new UsageError(kvProblem);
  const context = Math.min(lm.config.maxPosition, ctxFlag ?? DEFAULT_CTX_CAP);
  const s = sampling(lm.generation);
  if (!lm.tokenizer.chatTemplate) throw new UsageError(`${lm.path} has no chat template; use \`slipstream generate\` for plain completion`);
  const session = new ChatSession(lm.tokenizer, lm.model, s, { context, kvDtype: o.kvDtype as KvDType | undefined, eosIds: lm.config.eosIds, system: o.system });

  const terminal = io.terminal ?? ((io.input as { isTTY?: boolean }).isTTY === true && io.output.isTTY === true);
  const note = (m: string) => io.err.write(`${m}\n`);
  note(`slipstream chat: ${o.model ?? 'the default model'} (${lm.config.arch}, context ${session.context} tokens, replies up to ${s.maxTokens} tokens). /help for commands${terminal ? ', Ctrl-C stops a reply' : ''}.`);

  const rl = createInterface({ input: io.input, output: terminal ? io.output : undefined, terminal, prompt: '>>> ', historySize: 200 });
  const lines = new LineQueue(rl);
  let generating = false;
  let stopRequested = false;
  let lastInterrupt = 0; // when Ctrl-C was last pressed at an empty prompt
  let quit = false;
  const onInterrupt = () => {
    if (generating) {
      stopRequested = true;
      return;
    }
    if (terminal && rl.line.length > 0) {
      // Ctrl-C on a half-typed line clears it, as in a shell.
      rl.write(null, { ctrl: true, name: 'u' });
      lastInterrupt = 0;
      return;
    }
    if (lastInterrupt > 0) {
      quit = true;
      io.output.write('\n');
      rl.close();
      return;
    }
    lastInterrupt = Date.now();
    io.output.write('\n');
    note('(Ctrl-C again or /exit to leave)');
    if (terminal) rl.prompt();
  };
  rl.on('SIGINT', onInterrupt); // a terminal in raw mode: Ctrl-C is a key
  const onSignal = () => onInterrupt(); // piped input: a real SIGINT
  process.on('SIGINT', onSignal);

  try {
    for (;;) {
      if (terminal) rl.prompt();
      const line = await lines.next();
      if (line === null || quit) break;
      lastInterrupt = 0;
      const text = line.trim();
      if (text === '') continue;
      if (text.startsWith('/')) {
        const cmd = text.split(/\s+/, 1)[0]!;
        const arg = text.slice(cmd.length).trim();
        if (cmd === '/exit' || cmd === '/bye' || cmd === '/quit') break;
        if (cmd === '/reset' || cmd === '/clear') {
          session.reset();
          note('(conversation cleared)');
        } else if (cmd === '/system') {
          session.system = arg === '' ? undefined : arg;
          note(arg === '' ? '(system message removed)' : '(system message set)');
        } else if (cmd === '/help' || cmd === '/?') {
          note(HELP);
        } else {
          note(`unknown command ${cmd}: /help lists the commands`);
        }
        continue;
      }
      generating = true;
      stopRequested = false;
      try {
        const dropNote = (f: Fitted) => {
          if (f.dropped > 0) note(`(dropped the ${f.dropped} oldest message${f.dropped > 1 ? 's' : ''} so the conversation fits the ${session.context}-token context)`);
        };
        const r = await session.reply(text, (piece) => io.output.write(piece), () => stopRequested, dropNote);
        io.output.write('\n');
        if (r.finish === 'abort') note('(stopped)');
        else if (r.finish === 'length') note(r.fitted.maxTokens < s.maxTokens ? `(the reply reached the end of the context)` : `(the reply reached --max-tokens ${s.maxTokens})`);
        if (o.verbose) {
          note(`prompt ${r.fitted.promptIds.length} tokens (${r.cachedTokens} from the prefix cache) | reply ${r.tokens} tokens in ${r.seconds.toFixed(2)} s (${(r.tokens / Math.max(r.seconds, 1e-9)).toFixed(1)} tok/s) | ${r.finish}`);
        }
      } catch (e) {
        if (e instanceof UsageError || e instanceof ChatTemplateError || (e instanceof EngineError && e.code !== 'internal')) {
          note(`error: ${(e as Error).message}`);
        } else throw e;
      } finally {
        generating = false;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    rl.close();
  }
}
