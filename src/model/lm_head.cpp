// lm_head.cpp — chunked (vocabulary-parallel) LM head + cross-entropy; see lm_head.h.
// Per chunk: logits = x W^T; row max reduced (max) over tp; sum of exponentials and the target
// logit reduced (sum) over tp; loss (and top-1 hits); then the softmax gradient and its two products.
#include "longctx/lm_head.h"

#include <cmath>
#include <vector>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx {

double lm_head_loss(const float* x, const float* W, const int32_t* target, int64_t N, int64_t C,
                    int64_t V_loc, int64_t v0, float* dx, float* dW, float scale, float* logits,
                    int64_t chunk, int64_t* count, const Comm* tp, const RowStats& out) {
  CHECK(chunk > 0, "lm_head_loss: chunk must be positive");
  static thread_local std::vector<float> mx;  // grown once, reused every call
  static thread_local std::vector<double> stats;
  mx.resize(size_t(chunk)), stats.resize(size_t(2 * chunk));
  double loss = 0.0;
  int64_t cnt = 0;
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t rows = std::min(chunk, N - n0);
    const int32_t* tg = target + n0;
    double *sum = stats.data(), *zt = stats.data() + rows;
    cpu::linear_fwd(logits, x + n0 * C, W, rows, C, V_loc);
    cpu::xent_row_max(logits, rows, V_loc, mx.data());
    if (tp) tp->all_reduce_max(mx.data(), rows);
    cpu::xent_row_sum(logits, rows, V_loc, mx.data(), tg, v0, sum, zt);
    if (tp) tp->all_reduce_sum(stats.data(), 2 * rows);  // sum and zt are adjacent
    for (int64_t r = 0; r < rows; ++r) {
      const double l = tg[r] >= 0 ? double(mx[size_t(r)]) + std::log(sum[r]) - zt[r] : 0.0;
      if (tg[r] >= 0) loss += l, cnt += 1;
      if (out.loss) out.loss[n0 + r] = float(l);
      // The target logit, summed over tp from its one owner, is exact: top-1 iff it is the maximum.
      if (out.top1) out.top1[n0 + r] = tg[r] >= 0 && zt[r] == double(mx[size_t(r)]);
    }
    if (!dx && !dW) continue;
    cpu::xent_grad(logits, rows, V_loc, mx.data(), sum, tg, v0, scale);
    if (dx) cpu::linear_bwd(dx + n0 * C, nullptr, logits, nullptr, W, rows, C, V_loc, false);
    if (dW) cpu::linear_bwd(nullptr, dW, logits, x + n0 * C, nullptr, rows, C, V_loc, false);
  }
  if (count) *count = cnt;
  return loss;
}

}  // namespace longctx
