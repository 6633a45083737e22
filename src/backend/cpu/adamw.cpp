// adamw.cpp — AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected, step t >= 1:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (wd p + m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps))
//   p, g, m, v fp32 (n). The caller passes weight_decay = 0 for norm weights. g enters as
//   (g·g_mean)·g_clip, each product rounded to fp32 (the gradient's 1/targets and clip factors,
//   folded in here instead of two passes over it); p_out (optional) gets the new p as well.
#include <cmath>

#include "longctx/ops.h"

namespace longctx::cpu {

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float g_mean, float g_clip,
                  float* p_out) {
  const float bc1 = float(1.0 - std::pow(double(beta1), double(t)));
  const float bc2 = float(1.0 - std::pow(double(beta2), double(t)));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = (g[i] * g_mean) * g_clip;
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / bc1, vhat = vi / bc2;
    p[i] -= lr * (weight_decay * p[i] + mhat / (std::sqrt(vhat) + eps));
    if (p_out) p_out[i] = p[i];
  }
}

}  // namespace longctx::cpu
