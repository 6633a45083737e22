// lm_head.h — the LM head fused with softmax cross-entropy, chunked over rows so that at most
// chunk × V_loc logits exist at once; vocabulary-parallel when given a tensor-parallel group.
#pragma once

#include <cstdint>

#include "longctx/comm.h"

namespace longctx {

// x (N, C) final hidden states (all rows, on every tp rank); W (V_loc, C) this rank's vocabulary
// rows [v0, v0 + V_loc); target (N), -1 = no loss. Returns the summed loss over rows with a
// target (identical on every tp rank) and sets *count. With dx/dW non-null also the gradient of
// scale·loss: dx (N, C) is WRITTEN with this rank's partial (the caller reduces it over tp),
// dW += (V_loc, C). `logits` is scratch of chunk·V_loc floats. tp == nullptr: one rank.
// Per-row outputs, each (N) and optional: top1 = 1 where the row's target has the highest logit of
// the whole vocabulary (what greedy decoding would emit; a tie counts), 0 elsewhere and on rows
// without a target; loss = the row's cross-entropy (nats), 0 on rows without a target.
struct RowStats {
  uint8_t* top1 = nullptr;
  float* loss = nullptr;
};
double lm_head_loss(const float* x, const float* W, const int32_t* target, int64_t N, int64_t C,
                    int64_t V_loc, int64_t v0, float* dx, float* dW, float scale, float* logits,
                    int64_t chunk, int64_t* count, const Comm* tp, const RowStats& rows = {});

}  // namespace longctx
