// model.h — the Llama transformer, forward and backward by hand (CPU fp32 reference backend).
//
//   x = embed[tokens]                                                   (B, T, C)
//   per layer:  x += wo · attn(rope(wq·rms(x)), rope(wk·rms(x)), wv·rms(x))     attn: causal GQA
//               x += w_down · (silu(w_gate·rms(x)) * w_up·rms(x))
//   loss = sum over targets of cross_entropy(lm_head · rms(x))          chunked, no (N, V) logits
//
// The model owns its activations (allocated by configure(), once per stage, never in the step)
// and works on parameter and gradient buffers owned by the caller (flat, ParamLayout order).
#pragma once

#include <cstdint>
#include <vector>

#include "longctx/config.h"
#include "longctx/params.h"

namespace longctx {

struct LossSum {
  double sum = 0.0;   // sum of token losses (nats)
  int64_t count = 0;  // tokens with a target
};

class Model {
 public:
  // params/grads: layout.total floats each, owned by the caller, alive as long as the Model.
  Model(const ModelConfig& m, const ParamLayout& layout, float* params, float* grads);

  // Shapes the next micro-batches: B sequences of T tokens whose global positions are pos[0..T)
  // (RoPE), rotated with base theta. Allocates the activations when the shape grows.
  void configure(int64_t B, int64_t T, const std::vector<int64_t>& pos, double theta);

  // One micro-batch: tokens and targets are (B, T) row-major, target -1 = no loss at that token.
  // grads += d(loss sum)/d(params). Returns the loss sum and the number of targets.
  LossSum forward_backward(const int32_t* tokens, const int32_t* targets);
  // Loss only (no gradients, no saved activations beyond one layer's).
  LossSum forward(const int32_t* tokens, const int32_t* targets);

  int64_t activation_bytes() const { return int64_t(arena_.size() * sizeof(float)); }
  // Forward FLOPs per token at the configured T (matmuls + attention), for throughput/MFU logs.
  double flops_per_token_fwd() const;

 private:
  struct LayerActs {
    float *x_in, *xn1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *xn2, *rstd2, *gate, *up, *h;
  };
  void layer_forward(int64_t l, LayerActs& a, float* x_out);
  void layer_backward(int64_t l, LayerActs& a, float* dres);
  LossSum head(const int32_t* targets, bool with_grad);
  LayerActs& acts_for(int64_t l) { return recompute_ ? scratch_ : acts_[size_t(l)]; }

  ModelConfig m_;
  ModelView p_, g_;
  bool recompute_;
  int64_t B_ = 0, T_ = 0, N_ = 0, cap_N_ = 0, chunk_ = 0;
  std::vector<float> arena_;   // every activation and scratch buffer below points into it
  std::vector<LayerActs> acts_;  // per layer (without recompute)
  LayerActs scratch_{};          // the one set reused by every layer (with recompute)
  std::vector<float*> x_in_;     // per layer input (+ final), always kept
  float *xf_, *rstdf_, *dxf_, *logits_, *dres_, *dxn_, *dh_, *dgate_, *dup_, *datt_, *dq_, *dk_,
      *dv_, *delta_, *cos_, *sin_;
};

}  // namespace longctx
