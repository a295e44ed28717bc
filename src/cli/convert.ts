// `slipstream convert <hf-dir> <out.gguf> [--type f32|f16|q8_0|q4_k_m|q6_k]` and `convert <in.gguf> <out-dir>`.

import { statSync } from 'node:fs';
import { FormatError } from '../formats/errors.ts';
import { ggufToHf, hfToGguf, type GgufOutType } from '../models/convert.ts';
import { GGUF_OUT_TYPES } from '../models/quant-mix.ts';
import { UsageError } from '../errors.ts';

export async function convertCommand(input: string, output: string, opts: { type: string }): Promise<void> {
  const st = statSync(input, { throwIfNoEntry: false });
  if (!st) throw new FormatError(input, 'no such file or directory');
  const t0 = performance.now();
  if (st.isDirectory()) {
    if (!output.endsWith('.gguf')) throw new UsageError(`the output of a Hugging Face -> GGUF conversion must end in .gguf, got '${output}'`);
    if (!(GGUF_OUT_TYPES as readonly string[]).includes(opts.type)) throw new UsageError(`--type must be one of ${GGUF_OUT_TYPES.join(', ')}, got '${opts.type}'`);
    const r = hfToGguf(input, output, { type: opts.type as GgufOutType, progress: true });
    process.stderr.write(`wrote ${output}: ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB, ${opts.type}, in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    return;
  }
  if (!input.endsWith('.gguf')) throw new UsageError(`'${input}' is neither a model directory nor a .gguf file`);
  const r = ggufToHf(input, output, { progress: true });
  process.stderr.write(`wrote ${output}: ${r.tensors} tensors in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
