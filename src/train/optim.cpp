// optim.cpp — LR schedule and the shard's tensor spans (see optim.h).
#include "longctx/optim.h"

#include <algorithm>
#include <cmath>

#include "longctx/common.h"

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

std::vector<ShardSpan> shard_spans(const ParamLayout& layout, int64_t lo, int64_t hi) {
  CHECK(0 <= lo && lo <= hi && hi <= layout.total, "shard [{}, {}) outside [0, {})", lo, hi, layout.total);
  std::vector<ShardSpan> spans;
  for (const auto& t : layout.tensors) {
    const int64_t b = std::max(lo, t.offset), e = std::min(hi, t.offset + t.numel);
    if (b < e) spans.push_back({b - lo, e - lo, t.decay, t.replica});
  }
  return spans;
}

}  // namespace longctx
