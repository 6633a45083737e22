// model.h — the Llama transformer, forward and backward by hand, on any backend (backend/cpu.h),
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
//    TpMode::all_reduce: the residual stream x is whole on every tp rank, partial sums are
//    all-reduced. TpMode::reduce_scatter: x is split by rows (N = B·T_loc rows, N/tp per rank): the
//    normed input is all-gathered before the column-parallel matmuls and the row-parallel output
//    reduce-scattered; norm-weight gradients are then partial sums (reduce them over tp).
// The model owns its activations (allocated by configure(), once per stage, never in the step)
// and works on parameter and gradient buffers owned by the caller (flat, ParamLayout order).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "longctx/arena.h"
#include "longctx/comm.h"
#include "longctx/config.h"
#include "longctx/lm_head.h"
#include "longctx/params.h"
#include "longctx/ring_attention.h"

namespace longctx {

struct ModelParallel {
  const Comm* tp = nullptr;     // tensor-parallel group (nullptr: none)
  const Comm* sp = nullptr;     // sequence-parallel ring (nullptr: none)
  TpMode tp_mode = TpMode::all_reduce;
  Ring ring = Ring::zigzag;
};

// Written once for every backend B (backend/cpu.h: Cpu; backend/cuda.h: Cuda): activations
// B::Act, weights B::Param, fp32 gradients. Its activations, the ring's buffers and the LM head's
// scratch are views into one arena, counted before it is allocated.
template <class B>
class Model {
 public:
  using Act = typename B::Act;
  using Param = typename B::Param;
  // params: layout.total B::Param (this rank's blocks); grads: layout.total floats, or null for a
  // forward-only model (eval). Both owned by the caller.
  Model(const B& be, const ModelConfig& m, const ParamLayout& layout, Param* params, float* grads,
        const ModelParallel& par = {});

  // Bytes of the arena for `batch` sequences of global length T (activations with or without recompute,
  // ring buffers, LM-head scratch), counted without allocating anything.
  size_t arena_bytes(int64_t batch, int64_t T);
  // Bytes the backend's ops keep outside the arena at that shape (B::op_scratch_bytes).
  size_t op_scratch_bytes(int64_t batch, int64_t T) const;
  // The arena of the last arena_bytes() or configure() by what it holds (they add up to it).
  struct ArenaParts {
    size_t activations = 0, ring = 0, head = 0;  // layer activations and their gradients; the ring's K/V
                                                  // and dK/dV buffers; LM-head logits scratch
    size_t total() const { return activations + ring + head; }
  };
  const ArenaParts& arena_parts() const { return parts_; }
  // Counts as a training model (with the backward's buffers) though built without gradient
  // buffers: for the memory plan's probes (plan.h), which never run a step.
  void count_backward() { bwd_ = true; }
  // Shapes the next micro-batches: `batch` sequences of global length T, RoPE base theta. Allocates the
  // arena when the shape needs more than it holds (once per stage, never in the step).
  void configure(int64_t batch, int64_t T, double theta);
  // This rank's tokens of each sequence (valid after configure()).
  const SeqLayout& seq() const { return ring_.layout(); }

  // One micro-batch of this rank's tokens (host arrays): tokens and targets are (B, T_loc), target
  // -1 = none. grads += d(loss sum)/d(params) (this rank's contribution). Returns the loss sum and
  // the number of targets of these tokens (the same on every tp rank).
  LossSum forward_backward(const int32_t* tokens, const int32_t* targets);
  // Loss only; with `rows`, also each of the B·T_loc rows' loss and whether its target is the
  // model's most likely next token (see LmHead), e.g. for the needle evaluation.
  LossSum forward(const int32_t* tokens, const int32_t* targets, const RowStats& rows = {});

  // True when norm-weight gradients are partial over tp (reduce_scatter mode with tp > 1).
  bool norm_grads_partial() const { return rs_; }
  int64_t activation_bytes() const { return int64_t(held_); }
  // Forward FLOPs per token of the whole model at the configured T (matmuls + causal attention).
  double flops_per_token_fwd() const;

 private:
  struct LayerActs {
    Tensor<Act> x_in, xn1, q, k, v, att, x_mid, xn2, gate, up, h;
    Tensor<float> rstd1, lse, rstd2;
  };
  void shape(int64_t batch, int64_t T);  // sets the sizes and the ring's shape
  void take_all(Arena& a);           // every buffer, in one order, for both arena passes
  // attention = false: a.att and a.lse already hold this layer's attention (the kept ones).
  void layer_forward(int64_t l, LayerActs& a, Tensor<Act> x_out, bool attention = true);
  void layer_backward(int64_t l, LayerActs& a, Tensor<Act> dres);
  LossSum head(Tensor<const int32_t> targets, bool with_grad, const RowStats& rows = {});
  void embed(Tensor<const int32_t> tokens, Tensor<Act> x0);
  // Row-split helpers: rows (Nr, C) <-> full (N, C) over tp; identity when not reduce_scatter.
  Tensor<const Act> gather_rows(Tensor<const Act> rows, Tensor<Act> full);
  Tensor<Act> reduce_partial(Tensor<Act> full);       // the sum's (Nr, C) rows: in rows_ or full
  void reduce_rows(Tensor<Act> full, Tensor<Act> rows);  // the same, always into `rows`
  // Layer l's activations: its own set, or (recompute) the shared set, with layer l's kept
  // attention output and LSE when keep_att_.
  LayerActs& acts_for(int64_t l);

  const B& be_;
  ModelConfig m_;
  ModelParallel par_;
  TpShard tp_;
  ModelView<Param> p_;
  ModelView<float> g_;
  bool recompute_, rs_, bwd_;  // bwd_: the backward's buffers are taken (a training model)
  bool keep_att_ = false;      // recompute, training, !recompute_attention: attention kept per layer
  ArenaParts parts_;
  RingAttention<B> ring_;
  LmHead<B> lm_;
  int64_t B_ = 0, T_ = 0, N_ = 0, Nr_ = 0, chunk_ = 0;  // N_ rows, Nr_ of them local
  typename B::Memory mem_;
  size_t held_ = 0;              // bytes of mem_
  std::vector<LayerActs> acts_;  // per layer (without recompute)
  LayerActs scratch_{};          // the one set reused by every layer (with recompute)
  std::vector<Tensor<Act>> att_keep_;    // per layer attention output (keep_att_)
  std::vector<Tensor<float>> lse_keep_;  // and its log-sum-exp
  std::vector<Tensor<Act>> x_in_;  // per layer input (+ final), (Nr, C), always kept
  Tensor<Act> xf_, dxf_, dres_, dxn_, dh_, dgate_, dup_, datt_, dq_, dk_, dv_, full_, rows_;
  Tensor<float> rstdf_, cos_, sin_;
  Tensor<int32_t> tok_, tgt_;  // device copies of the tokens (empty on host backends)
};

}  // namespace longctx
