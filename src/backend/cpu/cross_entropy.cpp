// cross_entropy.cpp — softmax cross-entropy over one chunk of logit rows, in three pieces so that
// a vocabulary split over tensor-parallel ranks can reduce the row statistics in between
// (max, then sum of exponentials and the target logit): loss_n = mx + log(sum) - z[target].
//   z (rows, V) fp32 = logits of vocabulary slice [v0, v0+V); target (rows) int32, -1 = none.
//   grad: z <- scale·(exp(z - mx)/sum - onehot), written in place. Sums in double.
#include <cmath>

#include "longctx/ops.h"

namespace longctx::cpu {

void xent_row_max(const float* z, int64_t rows, int64_t V, float* mx) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* zr = z + r * V;
    float m = zr[0];
    for (int64_t j = 1; j < V; ++j) m = std::max(m, zr[j]);
    mx[r] = m;
  }
}

void xent_row_sum(const float* z, int64_t rows, int64_t V, const float* mx, const int32_t* target,
                  int64_t v0, double* sum, double* zt) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* zr = z + r * V;
    double s = 0.0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(double(zr[j] - mx[r]));
    sum[r] = s;
    const int64_t t = int64_t(target[r]) - v0;
    zt[r] = (target[r] >= 0 && t >= 0 && t < V) ? double(zr[t]) : 0.0;
  }
}

void xent_rows(const float* mx, const double* sum, const double* zt, const int32_t* target,
               int64_t rows, float* loss, uint8_t* top1, double* loss_sum, int64_t* count) {
  double total = *loss_sum;
  int64_t cnt = *count;
  for (int64_t r = 0; r < rows; ++r) {
    const double l = target[r] >= 0 ? double(mx[r]) + std::log(sum[r]) - zt[r] : 0.0;
    if (target[r] >= 0) total += l, cnt += 1;
    if (loss) loss[r] = float(l);
    // The target logit, summed over tp from its one owner, is exact: top-1 iff it is the maximum.
    if (top1) top1[r] = target[r] >= 0 && zt[r] == double(mx[r]);
  }
  *loss_sum = total, *count = cnt;
}

void xent_grad(float* z, int64_t rows, int64_t V, const float* mx, const double* sum,
               const int32_t* target, int64_t v0, float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* zr = z + r * V;
    if (target[r] < 0) {
      for (int64_t j = 0; j < V; ++j) zr[j] = 0.0f;
      continue;
    }
    const float k = float(double(scale) / sum[r]);
    for (int64_t j = 0; j < V; ++j) zr[j] = std::exp(zr[j] - mx[r]) * k;
    const int64_t t = int64_t(target[r]) - v0;
    if (t >= 0 && t < V) zr[t] -= scale;
  }
}

}  // namespace longctx::cpu
