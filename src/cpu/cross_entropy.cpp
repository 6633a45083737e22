// cross_entropy.cpp — fused LM head + softmax cross-entropy, `chunk` rows at a time.
//   logits = x @ W^T (chunk, V); loss_n = logsumexp(logits_n) - logits_n[target_n] (target >= 0).
//   grad of scale * sum_n loss_n: dlogits = scale (softmax - onehot); dx = dlogits @ W (written),
//   dW += dlogits^T @ x. x (N, C), W (V, C), target (N) int32 in [-1, V); -1 = no target.
//   Never holds more than chunk·V logits; sums in double; deterministic.
#include <cmath>
#include <vector>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx::cpu {

double lm_head_xent(const float* x, const float* W, const int32_t* target, int64_t N, int64_t C,
                    int64_t V, float* dx, float* dW, float scale, float* logits, int64_t chunk,
                    int64_t* count) {
  CHECK(chunk > 0, "lm_head_xent: chunk must be positive");
  double loss = 0.0;
  int64_t cnt = 0;
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t rows = std::min(chunk, N - n0);
    linear_fwd(logits, x + n0 * C, W, rows, C, V);
    static thread_local std::vector<double> row_loss;  // summed in row order: deterministic
    row_loss.assign(size_t(rows), 0.0);
    double* rl = row_loss.data();  // thread_local: take the caller's buffer into the team
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* z = logits + r * V;
      const int32_t tgt = target[n0 + r];
      if (tgt < 0) {  // no target: contributes nothing, not even gradient
        for (int64_t j = 0; j < V; ++j) z[j] = 0.0f;
        rl[r] = -1.0;
        continue;
      }
      float mx = z[0];
      for (int64_t j = 1; j < V; ++j) mx = std::max(mx, z[j]);
      double sum = 0.0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(double(z[j] - mx));
      const double lse = double(mx) + std::log(sum);
      rl[r] = lse - double(z[tgt]);
      const float inv = float(1.0 / sum);
      for (int64_t j = 0; j < V; ++j) z[j] = std::exp(z[j] - mx) * inv * scale;
      z[tgt] -= scale;
    }
    for (int64_t r = 0; r < rows; ++r)
      if (row_loss[r] >= 0.0) loss += row_loss[r], cnt += 1;
    if (dx) linear_bwd(dx + n0 * C, nullptr, logits, nullptr, W, rows, C, V, false);
    if (dW) linear_bwd(nullptr, dW, logits, x + n0 * C, nullptr, rows, C, V, false);
  }
  if (count) *count = cnt;
  return loss;
}

}  // namespace longctx::cpu
