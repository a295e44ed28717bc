// Each architecture's forward pass: one definition per family, for serving and training alike.

import type { ModelConfig } from '../formats/model-config.ts';
import { gemmaForward } from './gemma.ts';
import { gpt2Forward } from './gpt2.ts';
import { llamaForward } from './llama.ts';
import type { ForwardFn } from './model.ts';

export const FORWARD: Record<ModelConfig['arch'], ForwardFn> = {
  llama: llamaForward,
  mistral: llamaForward,
  mixtral: llamaForward,
  qwen2: llamaForward,
  qwen3: llamaForward,
  qwen3moe: llamaForward,
  phi3: llamaForward,
  gemma: gemmaForward,
  gemma2: gemmaForward,
  gemma3: gemmaForward,
  gpt2: gpt2Forward,
};
