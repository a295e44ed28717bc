// Argument checks shared by every backend. Each check throws an OpError naming the op and
// the shapes involved, and returns the flattened geometry the kernels run on.

import type { DType } from './dtype.ts';
import type { AttentionOptions, PoolRole, RopeOptions } from './backend.ts';
import { fmtShape, type Tensor } from './tensor.ts';

export class OpError extends Error {
  constructor(op: string, msg: string) {
    super(`${op}: ${msg}`);
    this.name = 'OpError';
  }
}

function desc(name: string, t: Tensor): string {
  return `${name} ${t.dtype}${fmtShape(t.shape)}`;
}

export function requireDType(op: string, name: string, t: Tensor, allowed: readonly DType[]): void {
  if (!allowed.includes(t.dtype)) throw new OpError(op, `${desc(name, t)} must be ${allowed.join(' or ')}`);
}

export interface Mat {
  rows: number;
  cols: number;
  /** elements between consecutive rows */
  rowStride: number;
}

/** View a tensor as a matrix [rows, cols]; leading dims must collapse into evenly strided rows. */
export function asMat(op: string, name: string, t: Tensor): Mat {
  const nd = t.ndim;
  const cols = t.shape[nd - 1]!;
  if (nd === 1) return { rows: 1, cols, rowStride: cols };
  for (let i = 0; i < nd - 2; i++) {
    if (t.shape[i]! > 1 && t.strides[i] !== t.strides[i + 1]! * t.shape[i + 1]!) {
      throw new OpError(op, `${desc(name, t)} with strides ${fmtShape(t.strides)}: leading dimensions must collapse into rows`);
    }
  }
  const rows = t.numel / (cols || 1);
  return { rows, cols, rowStride: t.strides[nd - 2]! };
}

function sameMat(op: string, a: Mat, an: string, at: Tensor, b: Mat, bn: string, bt: Tensor): void {
  if (a.rows !== b.rows || a.cols !== b.cols) throw new OpError(op, `${desc(an, at)} and ${desc(bn, bt)} differ in shape`);
}

export function checkMatmulMulti(x: Tensor, ws: readonly Tensor[], outs: readonly Tensor[]): void {
  if (ws.length === 0 || ws.length > 8) throw new OpError('matmulMulti', `takes 1 to 8 weights, got ${ws.length}`);
  if (outs.length !== ws.length) throw new OpError('matmulMulti', `${ws.length} weights but ${outs.length} outputs`);
}

export function checkMatmul(x: Tensor, w: Tensor, out: Tensor): { M: number; N: number; K: number; ldx: number; ldo: number } {
  const op = 'matmul';
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  if (w.ndim !== 2) throw new OpError(op, `weight ${desc('w', w)} must be 2-D [out, in]`);
  if (!w.isContiguous()) throw new OpError(op, `weight ${desc('w', w)} must be contiguous`);
  const xm = asMat(op, 'x', x);
  const om = asMat(op, 'out', out);
  const [N, K] = w.shape as [number, number];
  if (xm.cols !== K) throw new OpError(op, `${desc('x', x)} has ${xm.cols} columns but ${desc('w', w)} expects ${K}`);
  if (om.rows !== xm.rows || om.cols !== N) {
    throw new OpError(op, `${desc('out', out)} must be [${xm.rows}, ${N}] for ${desc('x', x)} . ${desc('w', w)}^T`);
  }
  return { M: xm.rows, N, K, ldx: xm.rowStride, ldo: om.rowStride };
}

/** Binary elementwise: b is the same matrix shape as a, or one row broadcast. */
export function checkBinary(op: string, a: Tensor, b: Tensor, out: Tensor): { am: Mat; bm: Mat; om: Mat; bcast: boolean } {
  requireDType(op, 'a', a, ['f32']);
  requireDType(op, 'b', b, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  const am = asMat(op, 'a', a);
  const bm = asMat(op, 'b', b);
  const om = asMat(op, 'out', out);
  sameMat(op, am, 'a', a, om, 'out', out);
  const bcast = bm.rows === 1 && am.rows !== 1;
  if (bcast) {
    if (bm.cols !== am.cols) throw new OpError(op, `${desc('b', b)} cannot broadcast over ${desc('a', a)}`);
  } else sameMat(op, am, 'a', a, bm, 'b', b);
  return { am, bm, om, bcast };
}

export function checkUnary(op: string, x: Tensor, out: Tensor): { xm: Mat; om: Mat } {
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  const xm = asMat(op, 'x', x);
  const om = asMat(op, 'out', out);
  sameMat(op, xm, 'x', x, om, 'out', out);
  return { xm, om };
}

export function checkGated(op: string, gate: Tensor, up: Tensor, out: Tensor): { gm: Mat; um: Mat; om: Mat } {
  requireDType(op, 'gate', gate, ['f32']);
  requireDType(op, 'up', up, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  const gm = asMat(op, 'gate', gate);
  const um = asMat(op, 'up', up);
  const om = asMat(op, 'out', out);
  sameMat(op, gm, 'gate', gate, um, 'up', up);
  sameMat(op, gm, 'gate', gate, om, 'out', out);
  return { gm, um, om };
}

export function checkNorm(op: string, x: Tensor, w: Tensor, b: Tensor | null, eps: number, out: Tensor): { xm: Mat; om: Mat } {
  const r = checkUnary(op, x, out);
  requireDType(op, 'w', w, ['f32']);
  if (w.numel !== r.xm.cols || !w.isContiguous()) throw new OpError(op, `${desc('w', w)} must be a contiguous vector of ${r.xm.cols}`);
  if (b) {
    requireDType(op, 'b', b, ['f32']);
    if (b.numel !== r.xm.cols || !b.isContiguous()) throw new OpError(op, `${desc('b', b)} must be a contiguous vector of ${r.xm.cols}`);
  }
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new OpError(op, `eps must be a finite number >= 0, got ${eps}`);
  return r;
}

export interface Heads {
  T: number;
  H: number;
  D: number;
  /** elements between tokens / between heads */
  sT: number;
  sH: number;
}

export function asHeads(op: string, name: string, t: Tensor): Heads {
  if (t.ndim !== 3) throw new OpError(op, `${desc(name, t)} must be 3-D [tokens, heads, head_dim]`);
  const [T, H, D] = t.shape as [number, number, number];
  return { T, H, D, sT: t.strides[0]!, sH: t.strides[1]! };
}

export function checkRope(x: Tensor, positions: Int32Array, opts: RopeOptions): Heads & { rotaryDim: number } {
  const op = 'rope';
  requireDType(op, 'x', x, ['f32']);
  const h = asHeads(op, 'x', x);
  if (positions.length !== h.T) throw new OpError(op, `${positions.length} positions for ${desc('x', x)}`);
  for (let i = 0; i < positions.length; i++) {
    if (positions[i]! < 0) throw new OpError(op, `position ${positions[i]} at index ${i} is negative`);
  }
  const rd = opts.rotaryDim ?? h.D;
  if (!Number.isInteger(rd) || rd <= 0 || rd > h.D || rd % 2 !== 0) throw new OpError(op, `rotaryDim ${rd} must be even and in (0, ${h.D}]`);
  if (opts.layout !== 'interleaved' && opts.layout !== 'half') throw new OpError(op, `unknown layout '${String(opts.layout)}'`);
  if (!(opts.theta > 0)) throw new OpError(op, `theta must be > 0, got ${opts.theta}`);
  const s = opts.scaling;
  if (s?.type === 'longrope') {
    const ok = (f: readonly number[]) => f.length === rd / 2 && f.every((v) => v > 0);
    if (!ok(s.shortFactor) || !ok(s.longFactor)) throw new OpError(op, `longrope needs ${rd / 2} positive short and long factors, got ${s.shortFactor.length} and ${s.longFactor.length}`);
    if (!(s.attnFactor > 0) || !(s.originalMaxPosition > 0)) throw new OpError(op, 'longrope needs attnFactor > 0 and originalMaxPosition > 0');
  } else if (s) {
    if (!(s.factor > 0)) throw new OpError(op, `scaling factor must be > 0, got ${s.factor}`);
    if (s.type === 'llama3' && !(s.highFreqFactor > s.lowFreqFactor && s.lowFreqFactor > 0 && s.originalMaxPosition > 0)) {
      throw new OpError(op, 'llama3 scaling needs highFreqFactor > lowFreqFactor > 0 and originalMaxPosition > 0');
    }
    if (s.type !== 'linear' && s.type !== 'llama3') throw new OpError(op, `unknown scaling type '${(s as { type: string }).type}'`);
  }
  return { ...h, rotaryDim: rd };
}

export function checkEmbedding(table: Tensor, ids: Int32Array, out: Tensor): { V: number; D: number; ldo: number } {
  const op = 'embedding';
  if (table.ndim !== 2 || !table.isContiguous()) throw new OpError(op, `${desc('table', table)} must be a contiguous [vocab, dim] matrix`);
  requireDType(op, 'out', out, ['f32']);
  const [V, D] = table.shape as [number, number];
  const om = asMat(op, 'out', out);
  if (om.rows !== ids.length || om.cols !== D) throw new OpError(op, `${desc('out', out)} must be [${ids.length}, ${D}]`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V) throw new OpError(op, `token id ${id} at index ${i} is out of range [0, ${V})`);
  }
  return { V, D, ldo: om.rowStride };
}

export interface Pool {
  nBlocks: number;
  Hkv: number;
  blockSize: number;
  D: number;
  /** Keys stored dimension-major ([D, block_size] per block and head): f32/f16 key pools. */
  keyMajor: boolean;
}

/** f32/f16 key pools are [n_blocks, n_kv_heads, head_dim, block_size]; q8_0 key pools and all value pools [n_blocks, n_kv_heads, block_size, head_dim]. */
export function asPool(op: string, name: string, c: Tensor, role: PoolRole): Pool {
  requireDType(op, name, c, ['f32', 'f16', 'q8_0']);
  const keyMajor = role === 'k' && c.dtype !== 'q8_0';
  if (c.ndim !== 4 || !c.isContiguous()) {
    const dims = keyMajor ? 'head_dim, block_size] key' : `block_size, head_dim] ${role === 'k' ? 'key' : 'value'}`;
    throw new OpError(op, `${desc(name, c)} must be a contiguous [n_blocks, n_kv_heads, ${dims} pool`);
  }
  const [nBlocks, Hkv, a, b] = c.shape as [number, number, number, number];
  return keyMajor ? { nBlocks, Hkv, blockSize: b, D: a, keyMajor } : { nBlocks, Hkv, blockSize: a, D: b, keyMajor };
}

export function checkKvWrite(x: Tensor, cache: Tensor, slots: Int32Array, role: PoolRole): { h: Heads; p: Pool } {
  const op = 'kvWrite';
  if (role !== 'k' && role !== 'v') throw new OpError(op, `role must be 'k' or 'v', got ${String(role)}`);
  requireDType(op, role, x, ['f32']);
  const h = asHeads(op, role, x);
  const p = asPool(op, 'cache', cache, role);
  if (h.H !== p.Hkv || h.D !== p.D) throw new OpError(op, `${desc(role, x)} does not fit ${role} ${desc('cache', cache)}`);
  if (slots.length !== h.T) throw new OpError(op, `${slots.length} slots for ${desc(role, x)}`);
  const n = p.nBlocks * p.blockSize;
  for (let i = 0; i < slots.length; i++) {
    if (slots[i]! < 0 || slots[i]! >= n) throw new OpError(op, `slot ${slots[i]} at index ${i} is out of range [0, ${n})`);
  }
  return { h, p };
}

function checkAttnCommon(op: string, q: Tensor, kCache: Tensor, vCache: Tensor, out: Tensor, opts: AttentionOptions): { qh: Heads; oh: Heads; p: Pool } {
  requireDType(op, 'q', q, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  const qh = asHeads(op, 'q', q);
  const oh = asHeads(op, 'out', out);
  const p = asPool(op, 'kCache', kCache, 'k');
  const pv = asPool(op, 'vCache', vCache, 'v');
  if (kCache.dtype !== vCache.dtype || p.nBlocks !== pv.nBlocks || p.Hkv !== pv.Hkv || p.blockSize !== pv.blockSize || p.D !== pv.D) {
    throw new OpError(op, `${desc('kCache', kCache)} and ${desc('vCache', vCache)} do not match (keys [n_blocks, n_kv_heads, head_dim, block_size] (q8_0: [n_blocks, n_kv_heads, block_size, head_dim]), values [n_blocks, n_kv_heads, block_size, head_dim], one dtype)`);
  }
  if (qh.T !== oh.T || qh.H !== oh.H || qh.D !== oh.D) throw new OpError(op, `${desc('out', out)} must match ${desc('q', q)}`);
  if (qh.D !== p.D) throw new OpError(op, `${desc('q', q)} head_dim differs from ${desc('kCache', kCache)}`);
  if (qh.H % p.Hkv !== 0) throw new OpError(op, `${qh.H} query heads is not a multiple of ${p.Hkv} kv heads`);
  if (!(Number.isFinite(opts.scale))) throw new OpError(op, `scale must be finite, got ${opts.scale}`);
  if (opts.softCap !== undefined && !(opts.softCap >= 0)) throw new OpError(op, `softCap must be >= 0, got ${opts.softCap}`);
  if (opts.window !== undefined && !(Number.isInteger(opts.window) && opts.window >= 0)) throw new OpError(op, `window must be an integer >= 0, got ${opts.window}`);
  return { qh, oh, p };
}

function checkTable(op: string, table: Int32Array, from: number, count: number, nBlocks: number, what: string): void {
  if (from + count > table.length) throw new OpError(op, `${what} needs ${count} block-table entries, table has ${table.length - from}`);
  for (let i = from; i < from + count; i++) {
    if (table[i]! < 0 || table[i]! >= nBlocks) throw new OpError(op, `${what}: block ${table[i]} at table index ${i} is out of range [0, ${nBlocks})`);
  }
}

export function checkAttentionPrefill(
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  blockTable: Int32Array,
  startPos: number,
  out: Tensor,
  opts: AttentionOptions,
): { qh: Heads; oh: Heads; p: Pool } {
  const op = 'attentionPrefill';
  const r = checkAttnCommon(op, q, kCache, vCache, out, opts);
  if (!Number.isInteger(startPos) || startPos < 0) throw new OpError(op, `startPos must be an integer >= 0, got ${startPos}`);
  const nTok = startPos + r.qh.T;
  checkTable(op, blockTable, 0, Math.ceil(nTok / r.p.blockSize), r.p.nBlocks, `sequence of ${nTok} tokens`);
  return r;
}

export function checkAttentionDecode(
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  blockTables: Int32Array,
  maxBlocks: number,
  seqLens: Int32Array,
  out: Tensor,
  opts: AttentionOptions,
): { qh: Heads; oh: Heads; p: Pool } {
  const op = 'attentionDecode';
  const r = checkAttnCommon(op, q, kCache, vCache, out, opts);
  const B = r.qh.T;
  if (seqLens.length !== B) throw new OpError(op, `${seqLens.length} sequence lengths for ${B} queries`);
  if (!Number.isInteger(maxBlocks) || maxBlocks <= 0) throw new OpError(op, `maxBlocks must be an integer > 0, got ${maxBlocks}`);
  if (blockTables.length < B * maxBlocks) throw new OpError(op, `blockTables has ${blockTables.length} entries, need ${B} x ${maxBlocks}`);
  for (let b = 0; b < B; b++) {
    const len = seqLens[b]!;
    const nb = Math.ceil(len / r.p.blockSize);
    if (len <= 0 || nb > maxBlocks) throw new OpError(op, `sequence ${b} length ${len} must be in [1, ${maxBlocks * r.p.blockSize}]`);
    checkTable(op, blockTables, b * maxBlocks, nb, r.p.nBlocks, `sequence ${b}`);
  }
  return r;
}

export function checkArgmax(x: Tensor): Mat {
  requireDType('argmax', 'x', x, ['f32']);
  const m = asMat('argmax', 'x', x);
  if (m.cols === 0) throw new OpError('argmax', `${desc('x', x)} has empty rows`);
  return m;
}

/** gatherRows / scatterRows: x and out are matrices of one width; every row index is inside the indexed matrix. */
export function checkRows(op: 'gatherRows' | 'scatterRows', x: Tensor, rows: Int32Array, out: Tensor): { xm: Mat; om: Mat } {
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  const xm = asMat(op, 'x', x);
  const om = asMat(op, 'out', out);
  if (xm.cols !== om.cols) throw new OpError(op, `${desc('x', x)} and ${desc('out', out)} differ in width`);
  const [indexed, listed, name] = op === 'gatherRows' ? [xm, om, 'x'] : [om, xm, 'out'];
  if (rows.length !== listed.rows) throw new OpError(op, `${rows.length} row indices for ${listed.rows} rows`);
  for (let j = 0; j < rows.length; j++) {
    const r = rows[j]!;
    if (!Number.isInteger(r) || r < 0 || r >= indexed.rows) throw new OpError(op, `row index ${r} at ${j} is outside ${name}'s [0, ${indexed.rows})`);
  }
  return { xm, om };
}

export function checkSoftCap(x: Tensor, cap: number, out: Tensor): { xm: Mat; om: Mat } {
  const r = checkUnary('softCap', x, out);
  if (!(cap > 0) || !Number.isFinite(cap)) throw new OpError('softCap', `cap must be a finite number > 0, got ${cap}`);
  return r;
}

export function checkTopkRoute(logits: Tensor, k: number, ids: Int32Array, weights: Tensor): { lm: Mat; wm: Mat } {
  const op = 'topkRoute';
  requireDType(op, 'logits', logits, ['f32']);
  requireDType(op, 'weights', weights, ['f32']);
  const lm = asMat(op, 'logits', logits);
  const wm = asMat(op, 'weights', weights);
  if (!Number.isInteger(k) || k < 1 || k > lm.cols) throw new OpError(op, `k must be an integer in [1, ${lm.cols}], got ${k}`);
  if (wm.rows !== lm.rows || wm.cols !== k) throw new OpError(op, `${desc('weights', weights)} must be [${lm.rows}, ${k}]`);
  if (ids.length !== lm.rows * k) throw new OpError(op, `ids holds ${ids.length} entries, expected ${lm.rows} * ${k}`);
  return { lm, wm };
}

export function checkCombineRows(x: Tensor, w: Tensor, out: Tensor): { xm: Mat; wm: Mat; om: Mat } {
  const op = 'combineRows';
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'w', w, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  const xm = asMat(op, 'x', x), wm = asMat(op, 'w', w), om = asMat(op, 'out', out);
  if (om.rows !== wm.rows || xm.rows !== wm.rows * wm.cols || xm.cols !== om.cols) {
    throw new OpError(op, `${desc('x', x)}, ${desc('w', w)} and ${desc('out', out)} must be [T * K, D], [T, K] and [T, D]`);
  }
  return { xm, wm, om };
}

// ---- image ops (NHWC) ----------------------------------------------------------------------

function requireContiguous(op: string, name: string, t: Tensor): void {
  if (!t.isContiguous()) throw new OpError(op, `${desc(name, t)} must be contiguous`);
}

export interface ConvGeom {
  B: number;
  H: number;
  W: number;
  C: number;
  OH: number;
  OW: number;
  Co: number;
  KH: number;
  KW: number;
  stride: number;
  pad: number;
}

export function checkConv2d(x: Tensor, w: Tensor, b: Tensor | null, out: Tensor, opts: { stride: number; pad: number; padEnd?: number }): ConvGeom {
  const op = 'conv2d';
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  requireDType(op, 'w', w, ['f32', 'f16', 'bf16']);
  if (x.ndim !== 4) throw new OpError(op, `${desc('x', x)} must be 4-D [B, H, W, C] (NHWC)`);
  if (w.ndim !== 4) throw new OpError(op, `${desc('w', w)} must be 4-D [C_out, kh, kw, C_in]`);
  if (out.ndim !== 4) throw new OpError(op, `${desc('out', out)} must be 4-D [B, OH, OW, C_out]`);
  requireContiguous(op, 'x', x);
  requireContiguous(op, 'w', w);
  requireContiguous(op, 'out', out);
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const [Co, KH, KW, Ci] = w.shape as [number, number, number, number];
  const { stride, pad } = opts;
  const padEnd = opts.padEnd ?? pad;
  for (const [n, v] of [['stride', stride], ['pad', pad], ['padEnd', padEnd]] as const) {
    if (!Number.isInteger(v) || v < (n === 'stride' ? 1 : 0)) throw new OpError(op, `${n} must be an integer >= ${n === 'stride' ? 1 : 0}, got ${v}`);
  }
  if (Ci !== C) throw new OpError(op, `${desc('x', x)} has ${C} channels but ${desc('w', w)} expects ${Ci}`);
  if (H + pad + padEnd < KH || W + pad + padEnd < KW) throw new OpError(op, `kernel ${KH}x${KW} is larger than the padded ${desc('x', x)}`);
  const OH = Math.floor((H + pad + padEnd - KH) / stride) + 1;
  const OW = Math.floor((W + pad + padEnd - KW) / stride) + 1;
  const [oB, oH, oW, oC] = out.shape as [number, number, number, number];
  if (oB !== B || oH !== OH || oW !== OW || oC !== Co) throw new OpError(op, `${desc('out', out)} must be [${B}, ${OH}, ${OW}, ${Co}]`);
  if (b) {
    requireDType(op, 'b', b, ['f32']);
    if (b.numel !== Co || !b.isContiguous()) throw new OpError(op, `${desc('b', b)} must be a contiguous vector of ${Co}`);
  }
  return { B, H, W, C, OH, OW, Co, KH, KW, stride, pad };
}

export function checkGroupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number, out: Tensor): { B: number; N: number; C: number } {
  const op = 'groupNorm';
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  requireDType(op, 'w', w, ['f32']);
  requireDType(op, 'b', b, ['f32']);
  if (x.ndim < 2) throw new OpError(op, `${desc('x', x)} must be [B, ..., C]`);
  requireContiguous(op, 'x', x);
  requireContiguous(op, 'out', out);
  if (out.numel !== x.numel || out.shape.length !== x.shape.length || out.shape.some((d, i) => d !== x.shape[i])) {
    throw new OpError(op, `${desc('out', out)} and ${desc('x', x)} differ in shape`);
  }
  const B = x.shape[0]!, C = x.shape[x.ndim - 1]!;
  const N = B === 0 ? 0 : x.numel / (B * C);
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) throw new OpError(op, `${groups} groups do not divide ${C} channels`);
  if (w.numel !== C || !w.isContiguous()) throw new OpError(op, `${desc('w', w)} must be a contiguous vector of ${C}`);
  if (b.numel !== C || !b.isContiguous()) throw new OpError(op, `${desc('b', b)} must be a contiguous vector of ${C}`);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new OpError(op, `eps must be a finite number >= 0, got ${eps}`);
  return { B, N, C };
}

export function checkUpsample2x(x: Tensor, out: Tensor): { B: number; H: number; W: number; C: number } {
  const op = 'upsample2x';
  requireDType(op, 'x', x, ['f32']);
  requireDType(op, 'out', out, ['f32']);
  if (x.ndim !== 4) throw new OpError(op, `${desc('x', x)} must be 4-D [B, H, W, C] (NHWC)`);
  requireContiguous(op, 'x', x);
  requireContiguous(op, 'out', out);
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const s = out.shape;
  if (s.length !== 4 || s[0] !== B || s[1] !== 2 * H || s[2] !== 2 * W || s[3] !== C) throw new OpError(op, `${desc('out', out)} must be [${B}, ${2 * H}, ${2 * W}, ${C}]`);
  return { B, H, W, C };
}

export interface Heads4 {
  B: number;
  H: number;
  T: number;
  D: number;
  /** element strides of batch, head, token */
  sB: number;
  sH: number;
  sT: number;
}

function asHeads4(op: string, name: string, t: Tensor): Heads4 {
  requireDType(op, name, t, ['f32']);
  if (t.ndim !== 4) throw new OpError(op, `${desc(name, t)} must be 4-D [B, heads, T, head_dim]`);
  const [B, H, T, D] = t.shape as [number, number, number, number];
  return { B, H, T, D, sB: t.strides[0]!, sH: t.strides[1]!, sT: t.strides[2]! };
}

export function checkAttention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: number, causal = false): { q: Heads4; k: Heads4; v: Heads4; o: Heads4 } {
  const op = 'attention';
  const qh = asHeads4(op, 'q', q), kh = asHeads4(op, 'k', k), vh = asHeads4(op, 'v', v), oh = asHeads4(op, 'out', out);
  if (kh.B !== qh.B || kh.H !== qh.H || kh.D !== qh.D) throw new OpError(op, `${desc('k', k)} does not match ${desc('q', q)}`);
  if (vh.B !== kh.B || vh.H !== kh.H || vh.T !== kh.T || vh.D !== kh.D) throw new OpError(op, `${desc('v', v)} does not match ${desc('k', k)}`);
  if (oh.B !== qh.B || oh.H !== qh.H || oh.T !== qh.T || oh.D !== qh.D) throw new OpError(op, `${desc('out', out)} does not match ${desc('q', q)}`);
  if (kh.T < 1) throw new OpError(op, `${desc('k', k)} has no keys`);
  if (!Number.isFinite(scale)) throw new OpError(op, `scale must be finite, got ${scale}`);
  if (causal && qh.T > kh.T) throw new OpError(op, `causal attention needs no more queries (${qh.T}) than keys (${kh.T})`);
  return { q: qh, k: kh, v: vh, o: oh };
}
