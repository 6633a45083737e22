// lm_head.h — the LM head fused with softmax cross-entropy, chunked over rows so that at most
// chunk × V_loc fp32 logits exist at once; vocabulary-parallel when given a tensor-parallel group.
// Written once for every backend B (backend/cpu.h); its scratch comes from the owner's arena.
//
// Per chunk: logits = x Wᵀ; row max reduced (max) over tp; sum of exponentials and the target logit
// reduced (sum) over tp; loss (and top-1 flags); then the softmax gradient and its two products.
#pragma once

#include <cstdint>

#include "longctx/arena.h"
#include "longctx/comm.h"

namespace longctx {

// Per-row outputs in host memory, each (N) and optional: top1 = 1 where the row's target has the
// highest logit of the whole vocabulary (what greedy decoding would emit; a tie counts), 0 elsewhere
// and on rows without a target; loss = the row's cross-entropy (nats), 0 on rows without a target.
struct RowStats {
  uint8_t* top1 = nullptr;
  float* loss = nullptr;
};

struct LossSum {
  double sum = 0.0;   // sum of token losses (nats)
  int64_t count = 0;  // tokens with a target
};

template <class B>
class LmHead {
 public:
  using Act = typename B::Act;
  using Param = typename B::Param;
  // tp == nullptr: one rank. chunk: rows per logits GEMM; V_loc: this rank's vocabulary rows.
  LmHead(const B& be, const Comm* tp) : be_(be), tp_(tp) {}
  void take_buffers(Arena& a, int64_t chunk, int64_t V_loc);

  // x (N, C) final hidden states (all rows, on every tp rank); W (V_loc, C) this rank's vocabulary
  // rows [v0, v0 + V_loc); target (N), -1 = no loss. Returns the summed loss over rows with a
  // target (identical on every tp rank) and their count. With dx/dW non-empty also the gradient
  // of scale·loss: dx (N, C) is WRITTEN with this rank's partial (the caller reduces it over tp),
  // dW += (V_loc, C).
  LossSum loss(Tensor<const Act> x, Tensor<const Param> W, Tensor<const int32_t> target, int64_t v0,
               Tensor<Act> dx, Tensor<float> dW, float scale, const RowStats& rows = {});

 private:
  const B& be_;
  const Comm* tp_;
  int64_t chunk_ = 0;
  Tensor<float> logits_, mx_;
  Tensor<double> stats_;  // per chunk row: sum of exponentials, then the target logit
  Tensor<double> acc_;    // (2): the loss sum and the number of targets, over the chunks
  // Backends whose activations are not fp32: the logits gradient cast for the two products.
  Tensor<Act> dz_;
  // Device backends: the chunk's row losses and top-1 flags before their download (RowStats).
  Tensor<float> row_loss_;
  Tensor<uint8_t> row_top1_;
};

// One call on the CPU backend with its own scratch (allocated per call: for tests and tools, not
// the step loop). Arguments as LmHead::loss, on raw host arrays; *count = rows with a target.
double lm_head_loss(const float* x, const float* W, const int32_t* target, int64_t N, int64_t C,
                    int64_t V_loc, int64_t v0, float* dx, float* dW, float scale, int64_t chunk,
                    int64_t* count, const Comm* tp, const RowStats& rows = {});

}  // namespace longctx
