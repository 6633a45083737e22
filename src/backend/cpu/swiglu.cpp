// swiglu.cpp — out = silu(gate) * up, silu(g) = g * sigmoid(g); elementwise over n = N·F.
//   bwd: dgate = dout * up * sig(g) * (1 + g (1 - sig(g))),  dup = dout * silu(g).
//   Saved for backward: gate, up. dgate/dup are written (not accumulated).
#include <cmath>

#include "longctx/ops.h"

namespace longctx::cpu {

void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + std::exp(-g));
    out[i] = g * sg * up[i];
  }
}

void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * sg;
    dgate[i] = dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
  }
}

}  // namespace longctx::cpu
