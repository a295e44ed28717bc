// Seeded xorshift32 fill for benchmark inputs: uniform in [-scale, scale).
export function randomF32(count: number, seed = 1, scale = 1): Float32Array {
  const a = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (((s >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return a;
}
