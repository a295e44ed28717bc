// The image ops (image.h): group norm over the pool.
#include <cmath>
#include <vector>

#include "image.h"
#include "pool.h"

namespace ss {
void group_norm(const float* x, const float* w, const float* b, float* out, int64_t B, int64_t N, int64_t C, int64_t G, float eps) {
  const int64_t cpg = C / G;
  // per (item, channel): out = x * scl + sh
  // (allocated here, not on a pool thread, so running out of memory throws to the caller)
  std::vector<float> scl((size_t)(B * C)), sh((size_t)(B * C));
  std::vector<double> sums((size_t)(B * G), 0.0), sqs((size_t)(B * G), 0.0);
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t n = b0; n < b1; n++) {
      const float* xb = x + n * N * C;
      double *sum = sums.data() + n * G, *sq = sqs.data() + n * G;
      for (int64_t p = 0; p < N; p++) {
        const float* r = xb + p * C;
        for (int64_t g = 0; g < G; g++) {
          float s = 0.f;  // a group's few channels of one pixel in f32, the pixels in double
          for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) s += r[c];
          sum[g] += s;
        }
      }
      const double cnt = (double)N * (double)cpg;
      for (int64_t g = 0; g < G; g++) sum[g] /= cnt;
      for (int64_t p = 0; p < N; p++) {
        const float* r = xb + p * C;
        for (int64_t g = 0; g < G; g++) {
          const double m = sum[g];
          double s = 0.0;
          for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) s += (r[c] - m) * (r[c] - m);
          sq[g] += s;
        }
      }
      for (int64_t g = 0; g < G; g++) {
        const double inv = 1.0 / std::sqrt(sq[g] / cnt + (double)eps);
        for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
          scl[n * C + c] = (float)(inv * w[c]);
          sh[n * C + c] = (float)(b[c] - sum[g] * inv * w[c]);
        }
      }
    }
  });
  parallel_for(B * N, 64, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t n = p / N;
      const float *r = x + p * C, *a = scl.data() + n * C, *s = sh.data() + n * C;
      float* o = out + p * C;
      for (int64_t c = 0; c < C; c++) o[c] = r[c] * a[c] + s[c];
    }
  });
}

}  // namespace ss
