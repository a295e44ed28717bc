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
  .version(pkg.version, '-v, --version')
  // Commander's own errors (unknown option or command, missing argument) as one line, with the
  // nearest flag suggested: `slipstream: error: unknown option '--max-token' (Did you mean --max-tokens?)`.
  .configureOutput({ outputError: (str, write) => write(`slipstream: ${str.trim().split('\n').join(' ')} (--help for usage)\n`) })
  .showSuggestionAfterError(true);

program
  .command('info')
  .description('show the native core: instruction set in use, those available, thread count')
  .addHelpText('after', '\nExample:\n  $ slipstream info            # SLIPSTREAM_THREADS=4 slipstream info: with 4 threads')
  .action(guard(async () => {
    const { cpuInfo } = await import('../tensor/runtime.ts');
    const i = cpuInfo();
    console.log(`slipstream ${pkg.version}`);
    console.log(`native core: isa ${i.isa} (available: ${i.available.join(', ')}), ${i.threads} threads`);
    console.log('environment: SLIPSTREAM_THREADS sets the thread count; SLIPSTREAM_NO_SIMD=1 forces the portable kernels');
  }));

program
  .command('serve')
  .description('serve a model over an OpenAI-compatible HTTP API (continuous batching, SSE streaming, Prometheus /metrics)')
  .option('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or hf:org/name[@revision] (default: the embedded default model, models/default); repeat it to serve several models, each as [NAME=]MODEL', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '8000')
  .option('--api-key <key>', 'require Authorization: Bearer <key> on /v1/* (default: $SLIPSTREAM_API_KEY)')
  .option('--served-model-name <name>', 'the model name clients send (default: from the model)')
  .option('--quantize <type>', 'quantize f32/f16/bf16 weights at load: q8_0, or q4_k (LM head q6_k)')
  .option('--lora <dir>', 'merge a LoRA adapter (PEFT layout, e.g. from `slipstream finetune`) into the weights at load')
  .option('--kv-cache-memory <GiB>', 'memory for the paged KV cache, in GiB (default: 40% of free memory, capped at what --max-seqs full contexts need)')
  .option('--kv-dtype <type>', 'KV cache dtype: f32, f16 or q8_0 (q8_0: 0.53x the memory of f16, so 1.88x the tokens in the same --kv-cache-memory)', 'f32')
  .option('--max-batch-tokens <n>', 'tokens per engine step (decode first, then prompt chunks)', '512')
  .option('--max-seqs <n>', 'sequences running at once', '16')
  .option('--max-waiting <n>', 'waiting-queue length before 429', '256')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--log', 'log every request')
  .option('--log-format <format>', 'the per-request log line on stdout: text or json', 'text')
  .option('--image-model <model>', 'also serve a Stable Diffusion pipeline (diffusers folder, hf:org/name, or a single-file .safetensors checkpoint) on /v1/images/generations and /v1/images/edits; "default": the embedded default image model (models/default-image), which is also served when neither --model nor --image-model is given')
  .option('--no-image-model', 'serve no image model (not even the embedded default one)')
  .option('--image-variant <name>', 'weights variant of the image model, e.g. fp16')
  .option('--image-config <dir>', 'single-file image model: a diffusers folder with its configs, tokenizer(s) and scheduler')
  .option('--image-prediction-type <type>', 'single-file image model: epsilon or v_prediction')
  .option('--image-lora <file[:scale]>', 'merge a LoRA .safetensors (kohya, diffusers or PEFT names) into the image model at load, at this strength (default 1); repeatable', collectLoras, [])
  .option('--no-parent-watch', 'keep serving when the process that started this one exits (by default the server drains and exits, as on SIGTERM, when its launcher goes away: npx, a supervisor, a script)')
  .addHelpText('after', '\nExamples:\n  $ slipstream serve                      # the embedded default model on http://127.0.0.1:8000/\n  $ slipstream serve -m hf:Qwen/Qwen2.5-0.5B-Instruct --host 0.0.0.0 --port 8080 --api-key sekret')
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
  .addHelpText('after', '\nExample:\n  $ slipstream bench kernels --quick')
  .action(guard(async (opts: { quick?: boolean; json?: string }) => {
    const { runKernelBench } = await import('../tensor/bench-kernels.ts');
    runKernelBench({ quick: opts.quick, json: opts.json });
  }));

program
  .command('generate')
  .description('generate text from a prompt; streams it to stdout, one timing line to stderr')
  .option('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or hf:org/name[@revision] (default: the embedded default model, models/default)')
  .requiredOption('-p, --prompt <text>', 'the prompt')
  .option('-n, --max-tokens <n>', 'tokens to generate', '128')
  .option('--temperature <t>', "sampling temperature (0: greedy) (default: the model's generation_config.json, else 0.8)")
  .option('--top-k <k>', "keep the k most likely tokens (0: off) (default: the model's generation_config.json, else 40)")
  .option('--top-p <p>', "nucleus sampling: keep the smallest set with probability >= p (default: the model's generation_config.json, else 0.95)")
  .option('--min-p <p>', 'drop tokens below p times the top probability (default: 0.05)')
  .option('--seed <s>', 'random seed (reproducible sampling) (default: random)')
  .option('--stop <string>', 'stop before the first occurrence of this text (repeatable, up to 16)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
  .option('--repetition-penalty <r>', 'divide positive (multiply negative) logits of prompt and generated tokens by r, in (0, 10] (1: off) (default: 1)')
  .option('--presence-penalty <p>', 'subtract p from the logits of tokens generated so far, in [-2, 2] (0: off) (default: 0)')
  .option('--frequency-penalty <f>', 'subtract f times its count so far from each generated token\'s logit, in [-2, 2] (0: off) (default: 0)')
  .option('--ignore-eos', 'keep generating past end-of-sequence tokens')
  .option('--chat', "apply the model's chat template to the prompt")
  .option('--system <text>', 'system message (with --chat)')
  .option('--quantize <type>', 'quantize f32/f16/bf16 weights at load: q8_0, or q4_k (LM head q6_k)')
  .option('--lora <dir>', 'merge a LoRA adapter (PEFT layout, e.g. from `slipstream finetune`) into the weights at load')
  .option('--kv-dtype <type>', 'KV cache dtype: f32, f16 or q8_0', 'f32')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--no-mmap', 'copy weights into resident memory instead of reading them through the file mapping')
  .addHelpText('after', '\nExample:\n  $ slipstream generate -p "Once upon a time" -n 64 --temperature 0')
  .action(guard(async (opts) => {
    const { generateCommand } = await import('./generate.ts');
    await generateCommand(opts);
  }));

program
  .command('image')
  .description('text-to-image or image-to-image with a Stable Diffusion pipeline (SD 1.x, 2.x, XL, Turbo, LCM); writes PNG files carrying their generation parameters')
  .option('-m, --model <model>', 'a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), hf:org/name[@revision], or a single-file checkpoint (.safetensors, SD 1.x / 2.x / XL base)')
  .requiredOption('-p, --prompt <text>', 'what to draw (CLIP reads 77 tokens; longer prompts are cut with a warning)')
  .option('--negative-prompt <text>', 'what to steer away from (classifier-free guidance)')
  .option('--steps <n>', 'denoising steps', '20')
  .option('--guidance <g>', 'classifier-free guidance scale (<= 1: off, as Turbo/LCM want)', '7.5')
  .option('--guidance-rescale <r>', 'rescale guided noise toward the text-only prediction, 0..1 (arXiv 2305.08891)', '0')
  .option('--scheduler <name>', "sampler: ddim, pndm, euler, euler-a, dpm++-2m, dpm++-2m-karras, unipc, lcm (default: the model's own)")
  .option('--seed <s>', 'random seed: the same seed gives the same picture as diffusers with torch.Generator("cpu").manual_seed(s) (default: random)')
  .option('--width <px>', "picture width, a multiple of 8 (default: the model's native size)")
  .option('--height <px>', "picture height, a multiple of 8 (default: the model's native size)")
  .option('-n, --n <count>', 'pictures to make from the prompt (one batch, one seed)', '1')
  .option('--init-image <file>', 'image-to-image: start from this PNG or JPEG (its size, rounded down to a multiple of 8, is the output size)')
  .option('--strength <s>', 'image-to-image: how much to change the init image, (0, 1] (default: 0.8)')
  .option('--variant <name>', 'weights variant to load, e.g. fp16 (*.fp16.safetensors)')
  .option('--vae-tile <px>', "decode the picture in overlapping tiles of this size (diffusers' enable_tiling): the decoder's memory is one tile's (0: off)", '0')
  .option('--config <dir>', 'single-file checkpoint: a diffusers folder with its configs, tokenizer(s) and scheduler (needed for other architectures than SD 1.x / 2.x / XL base)')
  .option('--prediction-type <type>', 'single-file checkpoint: epsilon or v_prediction (default: v_prediction for SD 2.x, as diffusers; epsilon for SD 2.x base models)')
  .option('--lora <file[:scale]>', 'merge a LoRA .safetensors (kohya, diffusers or PEFT names; UNet and text encoders) at load, at this strength (default 1); repeatable', collectLoras, [])
  .option('-o, --output <file.png>', 'output file; with -n > 1, file-1.png, file-2.png, ...', 'image.png')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--no-progress', 'no progress bar')
  .addHelpText('after', '\nExamples:\n  $ slipstream image -m ./stable-diffusion-v1-5 -p "a watercolor fox in the snow" --steps 20 --scheduler dpm++-2m-karras --seed 1 -o fox.png\n  $ slipstream image -m hf:stabilityai/sd-turbo -p "a lighthouse at dusk" --steps 1 --guidance 0 --variant fp16\n  $ slipstream image -m ./stable-diffusion-v1-5 -p "the same fox, at night" --init-image fox.png --strength 0.6\n  $ slipstream image -m ./v1-5-pruned-emaonly.safetensors -p "a watercolor fox in the snow" -o fox.png\n  $ slipstream image -m ./stable-diffusion-v1-5 -p "a fox, pixel art" --lora pixel-art.safetensors:0.8 --lora detail.safetensors:0.5')
  .action(guard(async (opts) => {
    const { imageCommand } = await import('./image.ts');
    await imageCommand(opts);
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
  .option('--quantize <type>', 'quantize f32/f16/bf16 weights at load: q8_0, or q4_k (LM head q6_k)')
  .option('--lora <dir>', 'merge a LoRA adapter (PEFT layout) into the weights at load')
  .option('--kv-dtype <type>', 'KV cache dtype: f32, f16 or q8_0', 'f32')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .option('--no-mmap', 'copy weights into resident memory instead of reading them through the file mapping')
  .option('--verbose', 'one timing line per reply')
  .addHelpText('after', '\nExamples:\n  $ slipstream chat                                  # the embedded default model\n  $ slipstream chat -m hf:Qwen/Qwen2.5-0.5B-Instruct --system "Answer briefly." --temperature 0.7')
  .action(guard(async (opts) => {
    const { chatCommand } = await import('./chat.ts');
    await chatCommand(opts);
  }));

program
  .command('pull')
  .description('download a model from the Hugging Face hub into the cache (an interrupted pull resumes); prints its folder')
  .argument('<model>', 'hf:org/name[@revision], or hf:org/name/file.gguf[@revision] for one GGUF file')
  .option('--no-progress', 'no progress bars')
  .addHelpText('after', '\nExamples:\n  $ slipstream pull hf:Qwen/Qwen2.5-0.5B-Instruct\n  $ slipstream pull hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf')
  .action(guard(async (model: string, opts: { progress?: boolean }) => {
    const { pullCommand } = await import('./models.ts');
    await pullCommand(model, opts);
  }));

program
  .command('list')
  .alias('ls')
  .description('list the cached models: name, revision, size, family, quantization ($SLIPSTREAM_CACHE, default ~/.cache/slipstream)')
  .option('--json', 'as JSON')
  .addHelpText('after', '\nExample:\n  $ SLIPSTREAM_CACHE=/models slipstream list')
  .action(guard(async (opts: { json?: boolean }) => {
    const { listCommand } = await import('./models.ts');
    await listCommand(opts);
  }));

program
  .command('rm')
  .description('remove cached models (with the blobs no other snapshot uses)')
  .argument('<models...>', 'hf:org/name (every revision), hf:org/name@revision, or hf:org/name/file.gguf')
  .addHelpText('after', '\nExample:\n  $ slipstream rm hf:Qwen/Qwen2.5-0.5B-Instruct')
  .action(guard(async (models: string[]) => {
    const { rmCommand } = await import('./models.ts');
    await rmCommand(models);
  }));

program
  .command('convert')
  .description('convert a Hugging Face model directory to GGUF (llama.cpp loads it), or a GGUF file to a Hugging Face directory')
  .argument('<input>', 'Hugging Face model directory, or a .gguf file')
  .argument('<output>', 'output .gguf file, or output directory')
  .option('--type <type>', 'GGUF tensor type for weight matrices: f32, f16, q8_0, q4_k_m, q5_k_m (llama.cpp\'s mixes), q6_k, or q4_0, q4_1, q5_0, q5_1, iq4_nl (LM head in Q6_K, as llama.cpp), or q2_k, q3_k_s, q3_k_m, q3_k_l, iq4_xs (llama.cpp\'s low-bit mixes)', 'f16')
  .addHelpText('after', '\nExamples:\n  $ slipstream convert models/default default.gguf --type q8_0\n  $ slipstream convert models/default default-q4km.gguf --type q4_k_m\n  $ slipstream convert default.gguf default-hf/')
  .action(guard(async (input: string, output: string, opts: { type: string }) => {
    const { convertCommand } = await import('./convert.ts');
    await convertCommand(input, output, opts);
  }));

program
  .command('train')
  .description('pretrain or fully fine-tune a model from a JSON config (resumes from the last checkpoint in its out dir)')
  .requiredOption('-c, --config <file>', 'training config (see recipes/default-model/train.json)')
  .option('--plot <file.png>', 'where to write the loss curve (PNG, with an SVG next to it; default: loss.png in the run directory)')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .addHelpText('after', '\nExample:\n  $ slipstream train --config recipes/default-model/train.json --plot loss.png')
  .action(guard(async (opts) => {
    const { trainCommand } = await import('./train.ts');
    await trainCommand(opts);
  }));

program
  .command('finetune')
  .description('fine-tune a Hugging Face model directory on text, JSONL or chat JSONL; LoRA with --lora-rank')
  .option('-m, --model <model>', 'base model: Hugging Face directory or hf:org/name (default: the embedded default model)')
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
  .option('--eval-fraction <f>', 'share of the data held out for the eval loss, in [0, 1); 0 trains on all of it (default 0.01)')
  .option('--checkpoint-every <n>', 'steps between checkpoints')
  .option('--plot <file.png>', 'where to write the loss curve (PNG, with an SVG next to it; default: loss.png in the run directory)')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .addHelpText('after', '\nExample:\n  $ slipstream finetune -m models/default -d chats.jsonl --format chat -o runs/ft --lora-rank 8 --steps 200')
  .action(guard(async (opts) => {
    const { finetuneCommand } = await import('./train.ts');
    await finetuneCommand(opts);
  }));

program
  .command('train-image')
  .description('fine-tune (full or LoRA) or train from scratch a Stable Diffusion model on a folder of captioned images; resumes from the last checkpoint in its out dir')
  .option('-m, --model <model>', 'base model: a diffusers folder or a single-file checkpoint (.safetensors)')
  .option('--config <dir>', 'single-file checkpoint: a diffusers folder with its configs, tokenizer and scheduler')
  .option('--from-scratch <dir>', 'train from random weights: a diffusers folder of config.json files (weights optional, e.g. a trained VAE), tokenizer/ and scheduler/')
  .requiredOption('-d, --data <dir>', 'images (.png, .jpg) with metadata.jsonl ({"file_name", "text"}, as Hugging Face imagefolder) or a .txt caption beside each')
  .requiredOption('-o, --out <dir>', 'run directory: cache/, checkpoints/, metrics.jsonl, samples/, loss.png and the trained model')
  .option('--instance-prompt <text>', 'DreamBooth: the caption of every image without one')
  .option('--caption-column <name>', 'the metadata.jsonl field holding the caption', 'text')
  .option('--resolution <px>', "training size: images are centre-cropped to a square and resized (default: the model's native size)")
  .option('--lora-rank <r>', 'train LoRA adapters of this rank on the attention projections (to_q, to_k, to_v, to_out.0) instead of every weight')
  .option('--lora-alpha <a>', 'LoRA alpha (default: the rank)')
  .option('--train-text-encoder', 'train the text encoder too (LoRA on its attention projections with --lora-rank)')
  .option('--prediction-type <type>', "epsilon or v_prediction (default: the scheduler's)")
  .option('--caption-dropout <p>', 'train this share of the pictures on the empty caption, so classifier-free guidance works (0.1 is usual from scratch)', '0')
  .option('--snr-gamma <g>', 'min-SNR-γ loss weighting (arXiv 2303.09556; 5 is usual; 0: off)', '0')
  .option('--noise-offset <x>', 'offset noise scale (0: off)', '0')
  .option('--latents <how>', "mean: the VAE encoder's mean; sample: a fresh draw from its distribution each time (diffusers)", 'sample')
  .option('--ema <decay>', 'keep an exponential moving average of the trained weights (e.g. 0.999; exported and sampled instead of the raw weights)')
  .option('--steps <n>', 'optimiser steps', '1000')
  .option('--batch-size <n>', 'images per micro-batch', '1')
  .option('--grad-accum <n>', 'micro-batches per step', '1')
  .option('--lr <lr>', 'peak learning rate (default 1e-4 with LoRA or from scratch, 1e-5 full)')
  .option('--min-lr <lr>', 'final learning rate of the cosine schedule', '0')
  .option('--warmup <n>', 'linear warmup steps', '0')
  .option('--schedule <s>', 'constant or cosine', 'constant')
  .option('--weight-decay <w>', 'AdamW weight decay', '0.01')
  .option('--clip <n>', 'global gradient-norm clipping (0: off)', '1')
  .option('--seed <n>', 'random seed (noise, timesteps, image order, LoRA init)', '0')
  .option('--checkpoint-every <n>', 'steps between checkpoints (0: only at the end)', '100')
  .option('--sample-prompt <text>', 'a prompt for the sample grids (repeatable)', collectLoras, [])
  .option('--sample-every <n>', 'steps between sample grids (samples/step-N.png; always one at the end)', '0')
  .option('--sample-steps <n>', 'denoising steps of the samples', '20')
  .option('--sample-seed <n>', 'seed of the first sample (the next prompts take the following seeds)', '0')
  .option('--sample-guidance <g>', 'guidance scale of the samples', '7.5')
  .option('--train-vae', 'train the VAE of the --from-scratch folder (reconstruction + KL) instead of the UNet: the first stage of a from-scratch pipeline; writes <out>/model with it and its scaling_factor')
  .option('--kl-weight <w>', 'weight of the KL term when training the VAE', '1e-4')
  .option('--vae-crop <px>', '--train-vae: train on random crops of this size (a multiple of the VAE\'s downsampling; cheaper steps, small objects weigh more)')
  .option('--single-file', 'also write model.safetensors in the original single-file layout (SD 1.x layout)')
  .option('--plot <file.png>', 'where to write the loss curve (default: loss.png in the run directory)')
  .option('-t, --threads <n>', 'compute threads (default: all cores)')
  .addHelpText('after', '\nExamples:\n  $ slipstream train-image -m ./stable-diffusion-v1-5 -d ./pictures -o runs/style --lora-rank 8 --steps 500 --sample-prompt "a fox, in the style" --sample-every 100\n  $ slipstream image -m ./stable-diffusion-v1-5 -p "a fox, in the style" --lora runs/style/lora.safetensors\n  $ slipstream train-image -m ./stable-diffusion-v1-5 -d ./dog --instance-prompt "a photo of sks dog" -o runs/dog --steps 400 --snr-gamma 5\n  $ slipstream train-image --from-scratch ./configs -d ./scenes -o runs/vae --train-vae --steps 2000\n  $ slipstream train-image --from-scratch runs/vae/model -d ./scenes -o runs/unet --train-text-encoder --steps 20000')
  .action(guard(async (opts) => {
    const { trainImageCommand } = await import('./train-image.ts');
    await trainImageCommand(opts);
  }));

program
  .command('train-tokenizer')
  .description('train a byte-level BPE tokenizer (tokenizer.json) on text or JSONL files')
  .requiredOption('-d, --data <files...>', '.txt or .jsonl files')
  .requiredOption('-o, --out <dir>', 'output directory')
  .option('--vocab-size <n>', 'vocabulary size', '4096')
  .option('--text-field <name>', 'JSONL field holding the text', 'text')
  .addHelpText('after', '\nExample:\n  $ slipstream train-tokenizer -d corpus.txt -o tok/ --vocab-size 8192')
  .action(guard(async (opts) => {
    const { trainTokenizerCommand } = await import('./train.ts');
    await trainTokenizerCommand(opts);
  }));

/** Errors a user can fix: their message says it all. Anything else is a bug: one line too, with a hint. */
function isExpected(e: unknown): boolean {
  return e instanceof FormatError || e instanceof UsageError || e instanceof OpError || e instanceof ChatTemplateError || ['TrainError', 'ConfigError', 'ModelLoadError', 'ServeError', 'DiffusionLoadError', 'ImageRequestError', 'SchedulerConfigError', 'ClipTokenizerError'].includes((e as Error)?.name);
}

/**
 * Reports an error as one line on stderr and exits non-zero (2 for usage errors): at once, so a
 * worker thread or a timer left behind cannot keep the process alive. SLIPSTREAM_DEBUG=1 adds
 * the stack trace.
 */
function fail(e: unknown): never {
  const err = e instanceof Error ? e : new Error(String(e));
  const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
  const msg = isExpected(e) ? oneLine(err.message) : `${oneLine(`${err.name === 'Error' ? '' : err.name + ': '}${err.message}`)} (unexpected: set SLIPSTREAM_DEBUG=1 for the stack trace)`;
  process.stderr.write(`slipstream: error: ${msg}\n`);
  if (process.env.SLIPSTREAM_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
}

/** A repeatable --lora / --image-lora: every value, in order. */
function collectLoras(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** Wraps an action: errors become one line on stderr and a non-zero exit code. */
function guard<A extends unknown[]>(fn: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      fail(e);
    }
  };
}

// Options whose default is a number show it as one (`(default: 8000)`, not `(default: "8000")`).
function numbersAsNumbers(cmd: Command): void {
  for (const o of cmd.options) {
    if (typeof o.defaultValue === 'string' && o.defaultValueDescription === undefined && /^(-?\d+(\.\d+)?(e-?\d+)?|inf)$/.test(o.defaultValue)) o.defaultValueDescription = o.defaultValue;
  }
  for (const c of cmd.commands) numbersAsNumbers(c);
}
numbersAsNumbers(program);

// Errors outside an action (bench serve's, a failed import) get the same one-line treatment.
process.on('unhandledRejection', fail);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e);
}
