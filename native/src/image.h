// The image ops of the diffusion networks (src/tensor/backend.ts), native side: group norm.
// (Attention runs on sgemm and the row softmax: a fused row-tile kernel written for it,
// 4 query rows x 16 keys per step from transposed keys, measured level with the two sgemm
// calls on this machine's AVX2 cores, so it was not kept.)
#pragma once
#include <cstdint>

namespace ss {
// x, out [B, N, C] contiguous (out may alias x); w, b [C]; G groups of C / G channels. Mean and
// variance per (batch item, group) in double, in pixel order (one thread per batch item), then
// out = x * (w / sd) + (b - mean * w / sd) on all threads. No activation: the caller applies
// SiLU with the vectorised row kernel.
void group_norm(const float* x, const float* w, const float* b, float* out, int64_t B, int64_t N, int64_t C, int64_t G, float eps);
}  // namespace ss
