// model.h — the Llama transformer, forward and backward by hand (CPU fp32 reference backend),
// tensor- and sequence-parallel.
//
//   x = embed[tokens]                                                   (B, T, C)
//   per layer:  x += wo · attn(rope(wq·rms(x)), rope(wk·rms(x)), wv·rms(x))     attn: causal GQA
//               x += w_down · (silu(w_gate·rms(x)) * w_up·rms(x))
//   loss = sum over targets of cross_entropy(lm_head · rms(x))          chunked, no (N, V) logits
//
// Parallel layout (Megatron + ring attention):
//  - sequence parallel (sp): this rank holds T_loc tokens of each sequence (ring_attention.h says
//    which); RoPE uses their global positions; attention is the ring.
//  - tensor parallel (tp): wq/wk/wv/w_gate/w_up column-parallel, wo/w_down row-parallel (their
//    partial outputs summed over tp), embedding and LM head vocabulary-parallel (params.h).
//    tp_mode "all_reduce": the residual stream x is whole on every tp rank, partial sums are
//    all-reduced. "reduce_scatter": x is split by rows (N = B·T_loc rows, N/tp per rank): the
//    normed input is all-gathered before the column-parallel matmuls and the row-parallel output
//    reduce-scattered; norm-weight gradients are then partial sums (reduce them over tp).
// The model owns its activations (allocated by configure(), once per stage, never in the step)
// and works on parameter and gradient buffers owned by the caller (flat, ParamLayout order).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "longctx/comm.h"
#include "longctx/config.h"
#include "longctx/lm_head.h"
#include "longctx/params.h"
#include "longctx/ring_attention.h"

namespace longctx {

struct LossSum {
  double sum = 0.0;   // sum of token losses (nats)
  int64_t count = 0;  // tokens with a target
};

struct ModelParallel {
  const Comm* tp = nullptr;     // tensor-parallel group (nullptr: none)
  const Comm* sp = nullptr;     // sequence-parallel ring (nullptr: none)
  bool reduce_scatter = false;  // tp_mode = "reduce_scatter"
  bool zigzag = true;           // ring = "zigzag"
};

class Model {
 public:
  // params/grads: layout.total floats each (this rank's blocks), owned by the caller.
  Model(const ModelConfig& m, const ParamLayout& layout, float* params, float* grads,
        const ModelParallel& par = {});

  // Shapes the next micro-batches: B sequences of global length T, RoPE base theta. Allocates
  // the activations when the shape grows.
  void configure(int64_t B, int64_t T, double theta);
  // This rank's tokens of each sequence (valid after configure()).
  const SeqLayout& seq() const { return ring_.layout(); }

  // One micro-batch of this rank's tokens: tokens and targets are (B, T_loc), target -1 = none.
  // grads += d(loss sum)/d(params) (this rank's contribution). Returns the loss sum and the
  // number of targets of these tokens (the same on every tp rank).
  LossSum forward_backward(const int32_t* tokens, const int32_t* targets);
  // Loss only; with `rows`, also each of the B·T_loc rows' loss and whether its target is the
  // model's most likely next token (see lm_head_loss), e.g. for the needle evaluation.
  LossSum forward(const int32_t* tokens, const int32_t* targets, const RowStats& rows = {});

  // True when norm-weight gradients are partial over tp (reduce_scatter mode with tp > 1).
  bool norm_grads_partial() const { return rs_; }
  int64_t activation_bytes() const { return int64_t(arena_.size() * sizeof(float)); }
  // Forward FLOPs per token of the whole model at the configured T (matmuls + causal attention).
  double flops_per_token_fwd() const;

 private:
  struct LayerActs {
    float *x_in, *xn1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *xn2, *rstd2, *gate, *up, *h;
  };
  void layer_forward(int64_t l, LayerActs& a, float* x_out);
  void layer_backward(int64_t l, LayerActs& a, float* dres);
  LossSum head(const int32_t* targets, bool with_grad, const RowStats& rows = {});
  void embed(const int32_t* tokens, float* x0);
  // Row-split helpers: rows (Nr, C) <-> full (N, C) over tp; identity when not reduce_scatter.
  const float* gather_rows(const float* rows, float* full);
  void reduce_rows(float* full, float* rows);  // full: partial sums over tp (clobbered)
  LayerActs& acts_for(int64_t l) { return recompute_ ? scratch_ : acts_[size_t(l)]; }

  ModelConfig m_;
  ModelParallel par_;
  TpShard tp_;
  ModelView p_, g_;
  bool recompute_, rs_;
  RingAttention ring_;
  int64_t B_ = 0, T_ = 0, N_ = 0, Nr_ = 0, chunk_ = 0;  // N_ rows, Nr_ of them local
  int64_t cap_ = 0, cap_T_ = 0;  // rows and local positions the buffers hold
  std::vector<float> arena_;     // every activation and scratch buffer below points into it
  std::vector<LayerActs> acts_;  // per layer (without recompute)
  LayerActs scratch_{};          // the one set reused by every layer (with recompute)
  std::vector<float*> x_in_;     // per layer input (+ final), (Nr, C), always kept
  float *xf_, *rstdf_, *dxf_, *logits_, *dres_, *dxn_, *dh_, *dgate_, *dup_, *datt_, *dq_, *dk_,
      *dv_, *cos_, *sin_, *full_, *rows_;
};

}  // namespace longctx
