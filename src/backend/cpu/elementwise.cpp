// elementwise.cpp — the small vector ops between the model's big ones (fp32, host).
//   add: out = a + b (the residual stream); scale: x *= s (the reference the folded factors of
//   sum_squares and adamw_update are tested against);
//   sum_squares: sum of (x·s)² in double, in index order (the same bits on every run and thread count).
#include "longctx/ops.h"

namespace longctx::cpu {

void add(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void scale(float* x, float s, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

double sum_squares(const float* x, int64_t n, float s) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = double(x[i] * s);  // rounded to fp32 first: scale(x, s) then sum_squares(x)
    acc += xi * xi;
  }
  return acc;
}

}  // namespace longctx::cpu
