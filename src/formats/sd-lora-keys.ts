// Tensor names of Stable Diffusion LoRA files, and the diffusers / transformers weight each one
// modifies. Three namings are in use (diffusers 0.27.2 reads all of them; lora_conversion_utils.py
// has its kohya rules):
//
//   kohya (sd-scripts, A1111, ComfyUI)   lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight
//                                        lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight
//                                        lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha
//                                        lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight   (SD 1/2)
//                                        lora_te1_… / lora_te2_…                                               (SDXL's two encoders)
//     The module path is flattened with "_" (ambiguous with the "_" inside names such as to_q or
//     transformer_blocks), so it is resolved against the component's own weight names (flatten
//     each, look the LoRA's up). SDXL LoRAs from sd-scripts name the UNet in the original (SGM)
//     layout: input_blocks_4_1_… / middle_block_1_… / output_blocks_2_1_…; sgmToDiffusers maps
//     those to diffusers' down_blocks / mid_block / up_blocks as diffusers'
//     _maybe_map_sgm_blocks_to_diffusers does, plus the resnet renames (in_layers_2 -> conv1,
//     out_layers_3 -> conv2, emb_layers_1 -> time_emb_proj, skip_connection -> conv_shortcut).
//   diffusers                            unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight
//                                        unet.….attn1.processor.to_q_lora.down.weight     (older; to_out_lora -> to_out.0)
//                                        text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight
//                                        text_encoder.….self_attn.to_q_lora.down.weight   (older; -> q_proj, to_out_lora -> out_proj)
//                                        (files from before the unet. prefix name UNet modules bare)
//   PEFT                                 unet.….attn1.to_q.lora_A.weight / lora_B.weight, text_encoder(_2).….q_proj.lora_A.weight
//
// A / down is [r, in] (or [r, C_in, kh, kw] for a convolution), B / up [out, r] (or [out, r, 1, 1]);
// "alpha" (a scalar, optional) scales the product by alpha / r.

export type LoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';

export interface LoraKey {
  component: LoraComponent;
  /**
   * The module the tensor belongs to: a dotted diffusers / transformers path
   * (down_blocks.0.attentions.0.proj_in), or for kohya names the flattened one (see `flat`).
   */
  module: string;
  /** kohya: `module` is the "_"-joined path, to be resolved against the component's weight names. */
  flat: boolean;
  part: 'down' | 'up' | 'alpha';
  naming: 'kohya' | 'diffusers' | 'peft';
}

const KOHYA = /^lora_(unet|te|te1|te2)_(.+?)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const LYCORIS = /\.(hada_[wt]\d_[ab]|lokr_[wt]\d(_[ab])?|dora_scale|diff|diff_b|on_input|w_norm|b_norm)$/;

/** The LoRA tensor a name denotes, or null when it is none of the namings above. */
export function parseLoraKey(key: string): LoraKey | null {
  const k = KOHYA.exec(key);
  if (k) {
    const component: LoraComponent = k[1] === 'unet' ? 'unet' : k[1] === 'te2' ? 'text_encoder_2' : 'text_encoder';
    const part = k[3] === 'alpha' ? 'alpha' : k[3] === 'lora_down.weight' ? 'down' : 'up';
    return { component, module: k[2]!, flat: true, part, naming: 'kohya' };
  }
  let component: LoraComponent = 'unet';
  let rest = key;
  const p = /^(unet|text_encoder|text_encoder_2)\.(.+)$/.exec(key);
  if (p) {
    component = p[1] as LoraComponent;
    rest = p[2]!;
  }
  const text = component !== 'unet';
  let m: RegExpExecArray | null;
  if ((m = /^(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(rest))) return { component, module: m[1]!, flat: false, part: m[2] === 'A' ? 'down' : 'up', naming: 'peft' };
  if ((m = /^(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$/.exec(rest))) return { component, module: m[1]!, flat: false, part: m[2] as 'down' | 'up', naming: 'diffusers' };
  if ((m = /^(.+?)(\.processor)?\.to_(q|k|v|out)_lora\.(down|up)\.weight$/.exec(rest))) {
    const proj = m[3]!;
    const leaf = text ? (proj === 'out' ? 'out_proj' : `${proj}_proj`) : proj === 'out' ? 'to_out.0' : `to_${proj}`;
    return { component, module: `${m[1]}.${leaf}`, flat: false, part: m[4] as 'down' | 'up', naming: 'diffusers' };
  }
  if ((m = /^(.+)\.alpha$/.exec(rest)) && p) return { component, module: m[1]!, flat: false, part: 'alpha', naming: 'diffusers' };
  return null;
}

/** Why a tensor name is not read: LyCORIS kinds (LoHa, LoKr, DoRA, full diffs) get their own message. */
export function unknownKeyReason(key: string): string {
  if (LYCORIS.test(key)) return `"${key}" is a LyCORIS tensor (LoHa, LoKr, DoRA or a full weight difference); only plain LoRA (lora_down/lora_up, lora_A/lora_B) is supported`;
  return `"${key}" is not a LoRA tensor name (expected kohya lora_unet_* / lora_te*_ .lora_down.weight / .lora_up.weight / .alpha, diffusers unet.*.lora.down.weight, or PEFT *.lora_A.weight / *.lora_B.weight)`;
}

/** A dotted module path flattened as kohya writes it: down_blocks.0.attentions.0 -> down_blocks_0_attentions_0. */
export const kohyaFlatten = (module: string): string => module.replace(/\./g, '_');

/**
 * A kohya UNet module in the original (SGM / ldm) layout, flattened, as the flattened diffusers
 * path; names already in the diffusers layout come back unchanged. `layersPerBlock` is the UNet's
 * layers_per_block (2 for SD 1/2 and SDXL).
 */
export function sgmToDiffusers(flat: string, layersPerBlock: number): string {
  const n = layersPerBlock + 1;
  const resnet = (s: string) =>
    s.replace(/^in_layers_2$/, 'conv1').replace(/^out_layers_3$/, 'conv2').replace(/^emb_layers_1$/, 'time_emb_proj').replace(/^skip_connection$/, 'conv_shortcut');
  let m: RegExpExecArray | null;
  if ((m = /^input_blocks_(\d+)_(\d+)_(.+)$/.exec(flat))) {
    const i = Number(m[1]), inner = Number(m[2]), rest = m[3]!;
    if (i === 0) return 'conv_in';
    const block = Math.floor((i - 1) / n), layer = (i - 1) % n;
    if (rest === 'op') return `down_blocks_${block}_downsamplers_0_conv`;
    return inner === 0 ? `down_blocks_${block}_resnets_${layer}_${resnet(rest)}` : `down_blocks_${block}_attentions_${layer}_${rest}`;
  }
  if (flat === 'input_blocks_0_0') return 'conv_in';
  if ((m = /^middle_block_(\d)_(.+)$/.exec(flat))) {
    const i = Number(m[1]), rest = m[2]!;
    return i === 1 ? `mid_block_attentions_0_${rest}` : `mid_block_resnets_${i === 0 ? 0 : 1}_${resnet(rest)}`;
  }
  if ((m = /^output_blocks_(\d+)_(\d+)_(.+)$/.exec(flat))) {
    const i = Number(m[1]), inner = Number(m[2]), rest = m[3]!;
    const block = Math.floor(i / n), layer = i % n;
    if (inner === 0) return `up_blocks_${block}_resnets_${layer}_${resnet(rest)}`;
    if (rest === 'conv') return `up_blocks_${block}_upsamplers_0_conv`;
    return `up_blocks_${block}_attentions_${layer}_${rest}`;
  }
  const top: Record<string, string> = { time_embed_0: 'time_embedding_linear_1', time_embed_2: 'time_embedding_linear_2', label_emb_0_0: 'add_embedding_linear_1', label_emb_0_2: 'add_embedding_linear_2', out_2: 'conv_out' };
  return top[flat] ?? flat;
}
