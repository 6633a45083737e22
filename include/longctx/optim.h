// optim.h — the learning-rate schedule, and which parts of a ZeRO-1 shard AdamW and the gradient
// norm visit (the update itself is the backend's adamw op, driven by StepEngine<B>).
#pragma once

#include <cstdint>
#include <vector>

#include "longctx/config.h"
#include "longctx/params.h"

namespace longctx {

// LR for the optimizer step with 0-based index `step` of a run of `total` steps: linear warmup
// from lr/warmup to lr over warmup_steps, then constant or cosine decay to min_lr at the last step.
double lr_at(const OptimConfig& o, int64_t step, int64_t total);

// A piece of the shard [lo, hi) of the flat buffer that lies in one tensor, shard-relative.
struct ShardSpan {
  int64_t begin, end;
  bool decay;    // AdamW weight decay applies (not for norm weights)
  bool replica;  // another tp rank holds the same block: the gradient norm counts it once
};
// The pieces of [lo, hi) tensor by tensor, in layout order.
std::vector<ShardSpan> shard_spans(const ParamLayout& layout, int64_t lo, int64_t hi);

}  // namespace longctx
