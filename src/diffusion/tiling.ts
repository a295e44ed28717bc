// Tiled VAE decoding, as diffusers' AutoencoderKL.tiled_decode computes it: the latents are cut
// into overlapping tiles (tile_latent = tile_px / f, stepping by 3/4 of a tile), each decoded on
// its own (so the decoder's activations are those of one tile, whatever the picture's size), then
// each tile is blended into the one above and the one to its left over a quarter tile with linear
// weights, and the top-left 3/4 of every tile is kept. Blends happen in place in tile order, as
// diffusers does (a tile's edges are already blended when the next row reads them), so the output
// equals diffusers' with `vae.enable_tiling()` and the same tile size.

/** Decodes one latent tile: NCHW [B, C, h, w] -> NCHW [B, 3, h·f, w·f]. */
export type DecodeTile = (z: Float32Array, shape: readonly [number, number, number, number]) => { data: Float32Array; shape: readonly [number, number, number, number] };

interface Tile {
  data: Float32Array;
  B: number;
  C: number;
  H: number;
  W: number;
}

function slice(z: Float32Array, [B, C, H, W]: readonly number[], y0: number, x0: number, h: number, w: number): Float32Array {
  const out = new Float32Array(B! * C! * h * w);
  for (let bc = 0; bc < B! * C!; bc++) {
    for (let y = 0; y < h; y++) {
      const src = (bc * H! + y0 + y) * W! + x0;
      out.set(z.subarray(src, src + w), (bc * h + y) * w);
    }
  }
  return out;
}

function blendV(a: Tile, b: Tile, extent: number): void {
  const e = Math.min(a.H, b.H, extent);
  for (let bc = 0; bc < b.B * b.C; bc++) {
    for (let y = 0; y < e; y++) {
      const wa = Math.fround(1 - y / e), wb = Math.fround(y / e);
      const ra = (bc * a.H + a.H - e + y) * a.W, rb = (bc * b.H + y) * b.W;
      for (let x = 0; x < b.W; x++) b.data[rb + x] = Math.fround(Math.fround(a.data[ra + x]! * wa) + Math.fround(b.data[rb + x]! * wb));
    }
  }
}

function blendH(a: Tile, b: Tile, extent: number): void {
  const e = Math.min(a.W, b.W, extent);
  for (let bc = 0; bc < b.B * b.C; bc++) {
    for (let y = 0; y < b.H; y++) {
      const ra = (bc * a.H + y) * a.W + a.W - e, rb = (bc * b.H + y) * b.W;
      for (let x = 0; x < e; x++) {
        const wa = Math.fround(1 - x / e), wb = Math.fround(x / e);
        b.data[rb + x] = Math.fround(Math.fround(a.data[ra + x]! * wa) + Math.fround(b.data[rb + x]! * wb));
      }
    }
  }
}

/**
 * diffusers' tiled_decode on NCHW latents z [B, C, h, w]; `tilePx` is the VAE's
 * tile_sample_min_size (its config's sample_size by default), `f` its pixels per latent.
 * Returns NCHW [B, 3, h·f, w·f].
 */
export function tiledDecode(z: Float32Array, shape: readonly [number, number, number, number], tilePx: number, f: number, decode: DecodeTile): { data: Float32Array; shape: [number, number, number, number] } {
  const [B, C, h, w] = shape;
  const tileLatent = Math.trunc(tilePx / f);
  if (tileLatent < 1) throw new RangeError(`tiledDecode: a tile of ${tilePx} px is smaller than one latent (${f} px)`);
  const overlap = Math.trunc(tileLatent * (1 - 0.25));
  const blend = Math.trunc(tilePx * 0.25);
  const rowLimit = tilePx - blend;
  const rows: Tile[][] = [];
  for (let i = 0; i < h; i += overlap) {
    const row: Tile[] = [];
    for (let j = 0; j < w; j += overlap) {
      const th = Math.min(tileLatent, h - i), tw = Math.min(tileLatent, w - j);
      const d = decode(slice(z, shape, i, j, th, tw), [B, C, th, tw]);
      row.push({ data: d.data, B, C: d.shape[1], H: d.shape[2], W: d.shape[3] });
    }
    rows.push(row);
  }
  const Co = rows[0]![0]!.C;
  // Output size: the kept parts of each tile, concatenated.
  const keptW = (t: Tile) => Math.min(t.W, rowLimit), keptH = (t: Tile) => Math.min(t.H, rowLimit);
  const OW = rows[0]!.reduce((s, t) => s + keptW(t), 0);
  const OH = rows.reduce((s, r) => s + keptH(r[0]!), 0);
  const out = new Float32Array(B * Co * OH * OW);
  let oy = 0;
  rows.forEach((row, i) => {
    let ox = 0;
    row.forEach((tile, j) => {
      if (i > 0) blendV(rows[i - 1]![j]!, tile, blend);
      if (j > 0) blendH(row[j - 1]!, tile, blend);
      const kh = keptH(tile), kw = keptW(tile);
      for (let bc = 0; bc < B * Co; bc++) {
        for (let y = 0; y < kh; y++) {
          const src = (bc * tile.H + y) * tile.W;
          out.set(tile.data.subarray(src, src + kw), (bc * OH + oy + y) * OW + ox);
        }
      }
      ox += kw;
    });
    oy += keptH(row[0]!);
  });
  return { data: out, shape: [B, Co, OH, OW] };
}
