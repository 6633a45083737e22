// optim.h — learning-rate schedule, global gradient-norm clipping and AdamW over a flat shard.
#pragma once

#include <cstdint>
#include <vector>

#include "longctx/config.h"
#include "longctx/params.h"

namespace longctx {

// LR for the optimizer step with 0-based index `step` of a run of `total` steps: linear warmup
// from lr/warmup to lr over warmup_steps, then constant or cosine decay to min_lr at the last step.
double lr_at(const OptimConfig& o, int64_t step, int64_t total);

// AdamW on this rank's range [lo, hi) of the flat parameter buffer (ZeRO-1 shard; the whole
// buffer on one rank). Weight decay is skipped for tensors with decay = false (norms).
class AdamW {
 public:
  AdamW(const OptimConfig& o, const ParamLayout& layout, int64_t lo, int64_t hi);
  // master, grad, m, v: (hi - lo) floats, element i is flat index lo + i. t = step number >= 1.
  void step(float* master, const float* grad, float* m, float* v, double lr, int64_t t) const;

 private:
  struct Span { int64_t begin, end; bool decay; };  // shard-relative
  OptimConfig o_;
  std::vector<Span> spans_;
};

// Sum of squares of x[0..n) in double, in a fixed order (the same on every run).
double sum_squares(const float* x, int64_t n);

}  // namespace longctx
