// rmsnorm.cpp — out = in * rstd * w, rstd = 1/sqrt(mean(in^2) + eps), per row.
//   in (N, C) fp32, w (C) -> out (N, C), rstd (N) saved for backward (with in).
//   bwd: din += rstd*(dout*w) - in*rstd^3 * mean(dout*w*in);  dw += sum_n dout*in*rstd.
//   Row sums in double (C can be 8K+). dw is reduced over rows in a fixed order (deterministic).
#include <cmath>

#include "longctx/ops.h"

namespace longctx::cpu {

void rmsnorm_fwd(float* out, float* rstd, const float* in, const float* w, int64_t N, int64_t C,
                 float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = in + n * C;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += double(x[c]) * x[c];
    const float r = float(1.0 / std::sqrt(ss / double(C) + double(eps)));
    rstd[n] = r;
    float* y = out + n * C;
    for (int64_t c = 0; c < C; ++c) y[c] = x[c] * r * w[c];
  }
}

void rmsnorm_bwd(float* din, float* dw, const float* dout, const float* in, const float* w,
                 const float* rstd, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = in + n * C;
    const float* dy = dout + n * C;
    const float r = rstd[n];
    double dot = 0.0;  // sum_c dy*w*x
    for (int64_t c = 0; c < C; ++c) dot += double(dy[c]) * w[c] * x[c];
    const float k = float(dot / double(C)) * r * r * r;
    float* dx = din + n * C;
    for (int64_t c = 0; c < C; ++c) dx[c] += dy[c] * w[c] * r - x[c] * k;
  }
  for (int64_t n = 0; n < N; ++n) {
    const float* x = in + n * C;
    const float* dy = dout + n * C;
    const float r = rstd[n];
    for (int64_t c = 0; c < C; ++c) dw[c] += dy[c] * x[c] * r;
  }
}

}  // namespace longctx::cpu
