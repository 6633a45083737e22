// optim.cpp — LR schedule and AdamW over a shard of the flat buffer (see optim.h).
#include "longctx/optim.h"

#include <algorithm>
#include <cmath>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx {

double lr_at(const OptimConfig& o, int64_t step, int64_t total) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * double(step + 1) / double(o.warmup_steps);
  if (o.schedule == Schedule::constant) return o.lr;
  const int64_t decay_steps = total - o.warmup_steps;
  if (decay_steps <= 1) return o.lr;
  const double frac = double(step - o.warmup_steps) / double(decay_steps - 1);  // 0 .. 1
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, frac)));
}

AdamW::AdamW(const OptimConfig& o, const ParamLayout& layout, int64_t lo, int64_t hi) : o_(o) {
  CHECK(0 <= lo && lo <= hi && hi <= layout.total, "AdamW: shard [{}, {}) outside [0, {})", lo, hi,
        layout.total);
  for (const auto& t : layout.tensors) {
    const int64_t b = std::max(lo, t.offset), e = std::min(hi, t.offset + t.numel);
    if (b < e) spans_.push_back({b - lo, e - lo, t.decay});
  }
}

void AdamW::step(float* master, const float* grad, float* m, float* v, double lr, int64_t t) const {
  for (const auto& s : spans_)
    cpu::adamw_update(master + s.begin, grad + s.begin, m + s.begin, v + s.begin, s.end - s.begin,
                      float(lr), float(o_.beta1), float(o_.beta2), float(o_.eps),
                      s.decay ? float(o_.weight_decay) : 0.0f, t);
}

double sum_squares(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

}  // namespace longctx
