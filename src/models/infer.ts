// InferOps: the Ops of a serving step (ops.ts) on a Backend. Outputs land in the model's scratch
// workspace under their keys (reused in every layer and every step: no allocation per step);
// the residual add, activations, RoPE and soft-cap work in place; attention writes k and v to
// the paged KV cache and attends over each sequence's blocks in the calls the engine planned
// (Batch.runs: decode tokens of many sequences batched into one call).

import type { ModelConfig } from '../formats/model-config.ts';
import type { AttentionOptions, Backend, RopeOptions } from '../tensor/backend.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { KvPool } from './kv.ts';
import type { Batch, Workspace } from './batch.ts';
import { geluApprox, type Activation, type Ops } from './ops.ts';

/** x[n, H * Dh] (a row-strided view is fine) as [n, H, Dh]. */
function heads(x: Tensor, H: number): Tensor {
  const [n, C] = x.shape as [number, number];
  return x.view([n, H, C / H], [x.strides[0]!, C / H, 1]);
}

export class InferOps implements Ops<Tensor, Tensor> {
  constructor(
    readonly be: Backend,
    readonly cfg: ModelConfig,
    readonly ws: Workspace,
    readonly kv: KvPool,
    readonly batch: Batch,
  ) {}

  private out(key: string, rows: number, cols: number): Tensor {
    return this.ws.get(key, rows, cols);
  }

  embed(table: Tensor, scale: number): Tensor {
    const x = this.out('x', this.batch.tokens.length, table.shape[1]!); //  [n, D]
    this.be.embedding(table, this.batch.tokens, x);
    if (scale !== 1) this.be.scale(x, scale, x);
    return x;
  }

  positionEmbed(table: Tensor): Tensor {
    const p = this.out('pos', this.batch.positions.length, table.shape[1]!);
    this.be.embedding(table, this.batch.positions, p);
    return p;
  }

  linear(key: string, x: Tensor, w: Tensor, b?: Tensor): Tensor {
    const y = this.out(key, x.shape[0]!, w.shape[0]!);
    this.be.matmul(x, w, y);
    if (b) this.be.add(y, b, y);
    return y;
  }

  linears(keys: readonly string[], x: Tensor, ws: readonly Tensor[], bs?: readonly (Tensor | undefined)[]): Tensor[] {
    // one job over x (quantized once for q8_0 weights)
    const ys = ws.map((w, i) => this.out(keys[i]!, x.shape[0]!, w.shape[0]!));
    this.be.matmulMulti(x, ws, ys);
    ys.forEach((y, i) => {
      const b = bs?.[i];
      if (b) this.be.add(y, b, y);
    });
    return ys;
  }

  rmsNorm(key: string, x: Tensor, w: Tensor): Tensor {
    const y = this.out(key, x.shape[0]!, x.shape[1]!);
    this.be.rmsNorm(x, w, this.cfg.normEps, y);
    return y;
  }

  headNorm(key: string, x: Tensor, nHeads: number, w: Tensor): Tensor {
    const [n, C] = x.shape as [number, number];
    const Dh = C / nHeads;
    const y = this.out(key, n, C);
    // each head a row of its own: [n * H, Dh] (x and y are row-major with row stride C)
    if (x.strides[0] !== C || x.strides[1] !== 1) throw new Error('headNorm: x must be contiguous');
    this.be.rmsNorm(x.view([n * nHeads, Dh], [Dh, 1]), w, this.cfg.normEps, y.view([n * nHeads, Dh], [Dh, 1]));
    return y;
  }

  layerNorm(key: string, x: Tensor, w: Tensor, b?: Tensor): Tensor {
    const y = this.out(key, x.shape[0]!, x.shape[1]!);
    this.be.layerNorm(x, w, b ?? null, this.cfg.normEps, y);
    return y;
  }

  add(a: Tensor, b: Tensor): Tensor {
    this.be.add(a, b, a);
    return a;
  }

  glu(gate: Tensor, up: Tensor, act: Activation): Tensor {
    if (act === 'silu') this.be.swiglu(gate, up, gate);
    else this.be.geglu(gate, up, gate, geluApprox(act));
    return gate;
  }

  act(x: Tensor, act: Activation): Tensor {
    if (act === 'silu') this.be.silu(x, x);
    else this.be.gelu(x, x, geluApprox(act));
    return x;
  }

  splitCols(x: Tensor, sizes: readonly number[]): Tensor[] {
    const [n, C] = x.shape as [number, number];
    if (sizes.reduce((a, b) => a + b, 0) !== C) throw new Error(`splitCols: sizes ${sizes} do not add up to ${C} columns`);
    let off = 0;
    return sizes.map((w) => {
      const v = x.view([n, w], [x.strides[0]!, 1], off);
      off += w;
      return v;
    });
  }

  rope(x: Tensor, nHeads: number, opts: RopeOptions): Tensor {
    this.be.rope(heads(x, nHeads), this.batch.positions, opts);
    return x;
  }

  attend(key: string, layer: number, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
    const { be, cfg, kv, batch } = this;
    const n = batch.tokens.length;
    const kc = kv.k[layer]!, vc = kv.v[layer]!;
    be.kvWrite(heads(k, cfg.nKvHeads), kc, batch.slots, 'k');
    be.kvWrite(heads(v, cfg.nKvHeads), vc, batch.slots, 'v');
    const q3 = heads(q, cfg.nHeads); //                                  [n, Hq, Dh]
    const out = this.out(key, n, cfg.nHeads * cfg.headDim);
    const o3 = heads(out, cfg.nHeads);
    for (const r of batch.runs) {
      if (r.decode) be.attentionDecode(q3.narrow(r.row, r.n), kc, vc, r.decode.tables, r.decode.maxBlocks, r.decode.lens, o3.narrow(r.row, r.n), opts);
      else be.attentionPrefill(q3.narrow(r.row, r.n), kc, vc, r.blockTable, r.startPos, o3.narrow(r.row, r.n), opts);
    }
    return out;
  }

  logitRows(x: Tensor): Tensor {
    const rows = this.batch.logitRows;
    const sel = this.out('sel', rows.length, x.shape[1]!); //            [R, D]
    this.be.gatherRows(x, rows, sel);
    return sel;
  }

  softCap(x: Tensor, cap: number): Tensor {
    this.be.softCap(x, cap, x);
    return x;
  }

  route(logits: Tensor, k: number): { ids: Int32Array; weights: Tensor } {
    const n = logits.shape[0]!;
    const ids = new Int32Array(n * k);
    const weights = this.out('route.w', n, k);
    this.be.topkRoute(logits, k, ids, weights);
    return { ids, weights };
  }

  gatherRows(key: string, x: Tensor, rows: Int32Array): Tensor {
    const y = this.out(key, rows.length, x.shape[1]!);
    this.be.gatherRows(x, rows, y);
    return y;
  }

  scatterRows(key: string, into: Tensor | null, y: Tensor, slots: Int32Array, nRows: number): Tensor {
    const buf = into ?? this.out(key, nRows, y.shape[1]!);
    this.be.scatterRows(y, slots, buf);
    return buf;
  }

  combineRows(key: string, x: Tensor, w: Tensor): Tensor {
    const out = this.out(key, w.shape[0]!, x.shape[1]!);
    this.be.combineRows(x, w, out);
    return out;
  }
}
