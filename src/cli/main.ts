// `slipstream` command line: generate, convert, info, bench. Errors a user can fix (a bad path,
// a bad file, a bad flag) print one line naming the problem and exit non-zero, without a stack.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ChatTemplateError } from '../formats/chat-template.ts';
import { FormatError } from '../formats/errors.ts';
import { OpError } from '../tensor/check.ts';
import { UsageError } from '../errors.ts';

const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };

const program = new Command();
program
  .name('slipstream')
  .description('Slipstream: an open generative-AI stack in TypeScript (serving engine, model zoo, training) on a native C++ compute core')
  .version(pkg.version, '-v, --version');

program
  .command('info')
  .description('show the native core: instruction set in use, those available, thread count')
  .action(async () => {
    const { cpuInfo } = await import('../tensor/runtime.ts');
    const i = cpuInfo();
    console.log(`slipstream ${pkg.version}`);
    console.log(`native core: isa ${i.isa} (available: ${i.available.join(', ')}), ${i.threads} threads`);
    console.log('environment: SLIPSTREAM_THREADS sets the thread count; SLIPSTREAM_NO_SIMD=1 forces the portable kernels');
  });

program
  .command('serve')
  .description('serve a model over an OpenAI-compatible HTTP API (continuous batching, SSE streaming, Prometheus /metrics)')
  .option('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or hf:org/name[@revision] (default: the embedded default model, models/default); repeat it to serve several models, each as [NAME=]MODEL', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '8000')
  .option('--api-key <key>', 'require Authorization: Bearer <key> on /v1/* (default: $SLIPSTREAM_API_KEY)')
  .option('--served-model-name <name>', 'the model name clients send (default: from the model)')
  .option('--quantize <type>', 'quantize f32/f16/bf16 weights at load (q8_0)')
  .option('--lora <dir>', 'merge a LoRA adapter (PEFT layout, e.g. from `slipstream finetune`) into the weights at load')
  .option('--kv-cache-memory <GiB>', 'memory for the paged KV cache, in GiB')
  .option('--max-batch-tokens <n>', 'tokens per engine step (decode first, then prompt chunks)')
  .option('--max-seqs <n>', 'sequences running at once')
  .option('--max-waiting <n>', 'waiting-queue length before 429')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--log', 'log every request')
  .action(guard(async (opts) => {
    const { serveCommand } = await import('./serve.ts');
    await serveCommand(opts);
  }));

const bench = program.command('bench').description('benchmarks');
const { registerBenchServe } = await import('../bench-serve/index.ts');
registerBenchServe(bench);
bench
  .command('kernels')
  .description("measure this machine's read bandwidth and FMA peak, then every kernel against them")
  .option('--quick', 'shorter measurements')
  .option('--json <file>', 'also write the results as JSON')
  .action(async (opts: { quick?: boolean; json?: string }) => {
    const { runKernelBench } = await import('../tensor/bench-kernels.ts');
    runKernelBench({ quick: opts.quick, json: opts.json });
  });

program
  .command('generate')
  .description('generate text from a prompt; streams it to stdout, one timing line to stderr')
  .option('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or hf:org/name[@revision] (default: the embedded default model, models/default)')
  .requiredOption('-p, --prompt <text>', 'the prompt')
  .option('-n, --max-tokens <n>', 'tokens to generate', '128')
  .option('--temperature <t>', 'sampling temperature (0: greedy)')
  .option('--top-k <k>', 'keep the k most likely tokens (0: off)')
  .option('--top-p <p>', 'nucleus sampling: keep the smallest set with probability >= p')
  .option('--min-p <p>', 'drop tokens below p times the top probability')
  .option('--seed <s>', 'random seed (reproducible sampling)')
  .option('--stop <string>', 'stop before the first occurrence of this text (repeatable, up to 16)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
  .option('--repetition-penalty <r>', 'divide positive (multiply negative) logits of prompt and generated tokens by r, in (0, 10] (1: off)')
  .option('--presence-penalty <p>', 'subtract p from the logits of tokens generated so far, in [-2, 2] (0: off)')
  .option('--frequency-penalty <f>', 'subtract f times its count so far from each generated token\'s logit, in [-2, 2] (0: off)')
  .option('--ignore-eos', 'keep generating past end-of-sequence tokens')
  .option('--chat', "apply the model's chat template to the prompt")
  .option('--system <text>', 'system message (with --chat)')
  .option('--quantize <type>', 'quantize f32/f16/bf16 weights at load (q8_0)')
  .option('--lora <dir>', 'merge a LoRA adapter (PEFT layout, e.g. from `slipstream finetune`) into the weights at load')
  .option('--kv-dtype <type>', 'KV cache dtype: f32 or f16', 'f32')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--no-mmap', 'copy weights into resident memory instead of reading them through the file mapping')
  .action(guard(async (opts) => {
    const { generateCommand } = await import('./generate.ts');
    await generateCommand(opts);
  }));

program
  .command('chat')
  .description('chat with a model in the terminal: streamed replies, history fitted to the context, /reset, /system, /exit; Ctrl-C stops a reply')
  .option('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or hf:org/name[@revision] (default: the embedded default model, models/default)')
  .option('--system <text>', 'system message (change it with /system in the chat)')
  .option('-n, --max-tokens <n>', 'tokens per reply at most', '256')
  .option('--ctx-size <n>', "context the conversation may fill (default: the model's, at most 4096)")
  .option('--temperature <t>', 'sampling temperature (0: greedy)')
  .option('--top-k <k>', 'keep the k most likely tokens (0: off)')
  .option('--top-p <p>', 'nucleus sampling: keep the smallest set with probability >= p')
  .option('--min-p <p>', 'drop tokens below p times the top probability')
  .option('--seed <s>', 'random seed (reproducible sampling)')
  .option('--stop <string>', 'end a reply before this text (repeatable, up to 16)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
  .option('--repetition-penalty <r>', 'divide positive (multiply negative) logits of seen tokens by r, in (0, 10] (1: off)')
  .option('--presence-penalty <p>', 'subtract p from the logits of tokens generated so far, in [-2, 2] (0: off)')
  .option('--frequency-penalty <f>', "subtract f times its count so far from each generated token's logit, in [-2, 2] (0: off)")
  .option('--ignore-eos', 'keep generating past end-of-sequence tokens')
  .option('--quantize <type>', 'quantize f32/f16/bf16 weights at load (q8_0)')
  .option('--lora <dir>', 'merge a LoRA adapter (PEFT layout) into the weights at load')
  .option('--kv-dtype <type>', 'KV cache dtype: f32 or f16', 'f32')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--no-mmap', 'copy weights into resident memory instead of reading them through the file mapping')
  .option('--verbose', 'one timing line per reply')
  .action(guard(async (opts) => {
    const { chatCommand } = await import('./chat.ts');
    await chatCommand(opts);
  }));

program
  .command('pull')
  .description('download a model from the Hugging Face hub into the cache (an interrupted pull resumes); prints its folder')
  .argument('<model>', 'hf:org/name[@revision], or hf:org/name/file.gguf[@revision] for one GGUF file')
  .option('--no-progress', 'no progress bars')
  .action(guard(async (model: string, opts: { progress?: boolean }) => {
    const { pullCommand } = await import('./models.ts');
    await pullCommand(model, opts);
  }));

program
  .command('list')
  .alias('ls')
  .description('list the cached models: name, revision, size, family, quantization ($SLIPSTREAM_CACHE, default ~/.cache/slipstream)')
  .option('--json', 'as JSON')
  .action(guard(async (opts: { json?: boolean }) => {
    const { listCommand } = await import('./models.ts');
    await listCommand(opts);
  }));

program
  .command('rm')
  .description('remove cached models (with the blobs no other snapshot uses)')
  .argument('<models...>', 'hf:org/name (every revision), hf:org/name@revision, or hf:org/name/file.gguf')
  .action(guard(async (models: string[]) => {
    const { rmCommand } = await import('./models.ts');
    await rmCommand(models);
  }));

program
  .command('convert')
  .description('convert a Hugging Face model directory to GGUF (llama.cpp loads it), or a GGUF file to a Hugging Face directory')
  .argument('<input>', 'Hugging Face model directory, or a .gguf file')
  .argument('<output>', 'output .gguf file, or output directory')
  .option('--type <type>', 'GGUF tensor type for weight matrices: f32, f16 or q8_0', 'f16')
  .action(guard(async (input: string, output: string, opts: { type: string }) => {
    const { convertCommand } = await import('./convert.ts');
    await convertCommand(input, output, opts);
  }));

program
  .command('train')
  .description('pretrain or fully fine-tune a model from a JSON config (resumes from the last checkpoint in its out dir)')
  .requiredOption('-c, --config <file>', 'training config (see recipes/default-model/train.json)')
  .option('--plot <file.png>', 'write the loss curve as PNG at the end')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .action(guard(async (opts) => {
    const { trainCommand } = await import('./train.ts');
    await trainCommand(opts);
  }));

program
  .command('finetune')
  .description('fine-tune a Hugging Face model directory on text, JSONL or chat JSONL; LoRA with --lora-rank')
  .requiredOption('-m, --model <model>', 'base model: Hugging Face directory or hf:org/name')
  .requiredOption('-d, --data <files...>', 'training data: .txt, .jsonl ({"text": ...}) or chat .jsonl ({"messages": [...]} / {"prompt", "completion"})')
  .requiredOption('-o, --out <dir>', 'run directory: checkpoints, metrics.jsonl, model/ (and adapter/ with LoRA)')
  .option('--format <f>', 'text, jsonl or chat (default: jsonl)')
  .option('--steps <n>', 'optimiser steps', '100')
  .option('--lr <lr>', 'peak learning rate (default 2e-4 with LoRA, 2e-5 full)')
  .option('--batch-size <n>', 'sequences per micro-batch')
  .option('--grad-accum <n>', 'micro-batches per step')
  .option('--seq-len <n>', 'tokens per sequence')
  .option('--warmup <n>', 'warmup steps')
  .option('--seed <n>', 'random seed')
  .option('--lora-rank <r>', 'train a LoRA adapter of this rank instead of every weight')
  .option('--lora-alpha <a>', 'LoRA alpha (default 2 x rank)')
  .option('--lora-dropout <p>', 'LoRA dropout')
  .option('--lora-targets <list>', 'comma-separated projections: q,k,v,o,gate,up,down (default q,v)')
  .option('--quantize-base <type>', 'keep the frozen base weights in q8_0 (QLoRA)')
  .option('--eval-every <n>', 'steps between eval-loss measurements')
  .option('--checkpoint-every <n>', 'steps between checkpoints')
  .option('--plot <file.png>', 'write the loss curve as PNG at the end')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .action(guard(async (opts) => {
    const { finetuneCommand } = await import('./train.ts');
    await finetuneCommand(opts);
  }));

program
  .command('train-tokenizer')
  .description('train a byte-level BPE tokenizer (tokenizer.json) on text or JSONL files')
  .requiredOption('-d, --data <files...>', '.txt or .jsonl files')
  .requiredOption('-o, --out <dir>', 'output directory')
  .option('--vocab-size <n>', 'vocabulary size', '4096')
  .option('--text-field <name>', 'JSONL field holding the text', 'text')
  .action(guard(async (opts) => {
    const { trainTokenizerCommand } = await import('./train.ts');
    await trainTokenizerCommand(opts);
  }));

/** Wraps an action: expected errors become one line on stderr and a non-zero exit code. */
function guard<A extends unknown[]>(fn: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      const err = e as Error;
      const expected =
        e instanceof FormatError || e instanceof UsageError || e instanceof OpError || e instanceof ChatTemplateError || ['TrainError', 'ConfigError', 'ModelLoadError'].includes((e as Error).name);
      process.stderr.write(`slipstream: error: ${expected ? err.message : (err.stack ?? String(err))}\n`);
      process.exitCode = e instanceof UsageError ? 2 : 1;
    }
  };
}

program.showHelpAfterError();
await program.parseAsync(process.argv);
