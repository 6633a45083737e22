// model.cpp — forward/backward of the Llama stack over a backend's ops (backend/cpu.h), tensor-
// parallel over par_.tp and sequence-parallel (ring attention) over par_.sp; see model.h.
// Instantiated for the CPU backend at the end.
#include "longctx/model.h"

#include <algorithm>

#include "longctx/backend/counting.h"
#include "longctx/backend/cpu.h"
#include "longctx/backend/cuda.h"
#include "longctx/common.h"

namespace longctx {

template <class B>
Model<B>::Model(const B& be, const ModelConfig& m, const ParamLayout& layout, Param* params, float* grads,
                const ModelParallel& par)
    : be_(be), m_(m), par_(par), tp_(tp_shard(m, par.tp ? par.tp->rank() : 0, par.tp ? par.tp->size() : 1)),
      p_(view_of(m, layout, params)), g_(view_of(m, layout, grads)), recompute_(m.recompute),
      rs_(par.tp_mode == TpMode::reduce_scatter && par.tp && par.tp->size() > 1), bwd_(grads != nullptr),
      ring_(be, par.sp, par.ring == Ring::zigzag), lm_(be, par.tp) {}

template <class B>
void Model<B>::shape(int64_t Bn, int64_t T) {
  ring_.configure(Bn, T, tp_.NH, tp_.NKV, m_.head_size());
  const int64_t N = Bn * seq().T_loc;
  CHECK(!rs_ || N % tp_.size == 0, "reduce_scatter: {} local rows are not divisible by tp = {}", N, tp_.size);
  B_ = Bn, T_ = T, N_ = N, Nr_ = rs_ ? N / tp_.size : N;
  // LM-head rows per logits GEMM: model.logits_chunk, or at most B::kLogitsBytes of fp32 logits.
  const int64_t chunk = m_.logits_chunk > 0 ? m_.logits_chunk : int64_t(B::kLogitsBytes / sizeof(float)) / tp_.V;
  chunk_ = std::min(N, std::max<int64_t>(1, chunk));
}

template <class B>
void Model<B>::take_all(Arena& a) {
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = tp_.NH, NKV = tp_.NKV, F = tp_.F;
  const int64_t N = N_, Nr = Nr_, L = m_.n_layers, Tl = seq().T_loc;
  auto act = [&](int64_t rows, int64_t cols) { return a.take<Act>({rows, cols}); };
  auto f32 = [&](int64_t rows, int64_t cols) { return a.take<float>({rows, cols}); };
  keep_att_ = recompute_ && bwd_ && !m_.recompute_attention;
  auto make_set = [&](bool with_att) {
    const int64_t Na = with_att ? N : 0;
    LayerActs s{};
    s.xn1 = act(N, C), s.rstd1 = f32(Nr, 1), s.q = act(N, NH * HS), s.k = act(N, NKV * HS);
    s.v = act(N, NKV * HS), s.att = act(Na, NH * HS), s.lse = f32(Na, NH), s.x_mid = act(Nr, C);
    s.xn2 = act(N, C), s.rstd2 = f32(Nr, 1), s.gate = act(N, F), s.up = act(N, F), s.h = act(N, F);
    return s;
  };
  acts_.clear(), att_keep_.clear(), lse_keep_.clear();
  if (recompute_) {
    scratch_ = make_set(!keep_att_);
    for (int64_t l = 0; keep_att_ && l < L; ++l) att_keep_.push_back(act(N, NH * HS)), lse_keep_.push_back(f32(N, NH));
  } else {
    for (int64_t l = 0; l < L; ++l) acts_.push_back(make_set(true));
  }
  x_in_.assign(size_t(L + 1), {});
  for (auto& x : x_in_) x = act(Nr, C);
  xf_ = act(N, C), rstdf_ = f32(Nr, 1), cos_ = f32(Tl, HS / 2), sin_ = f32(Tl, HS / 2);
  const bool bwd = bwd_;  // a forward-only model (eval) takes no gradient buffers
  const int64_t Nb = bwd ? N : 0, Nrb = bwd ? Nr : 0;
  dxf_ = act(Nb, C), dres_ = act(Nrb, C), dxn_ = act(Nb, C), dh_ = act(Nb, F), dgate_ = act(Nb, F);
  dup_ = act(Nb, F), datt_ = act(Nb, NH * HS), dq_ = act(Nb, NH * HS), dk_ = act(Nb, NKV * HS);
  dv_ = act(Nb, NKV * HS);
  full_ = act(N, C), rows_ = act(rs_ ? Nr : 0, C);  // rows_: the row-split scratch (reduce_scatter)
  const int64_t dev_tokens = B::kHostMemory ? 0 : N;
  tok_ = a.take<int32_t>({dev_tokens}), tgt_ = a.take<int32_t>({dev_tokens});
  const size_t at_ring = a.bytes();
  ring_.take_buffers(a, bwd);
  const size_t at_head = a.bytes();
  lm_.take_buffers(a, chunk_, tp_.V);
  parts_ = {at_ring, at_head - at_ring, a.bytes() - at_head};
}

template <class B>
size_t Model<B>::arena_bytes(int64_t Bn, int64_t T) {
  const int64_t keep_B = B_, keep_T = T_;
  shape(Bn, T);
  Arena count;
  take_all(count);
  const ArenaParts counted = parts_;
  if (keep_T > 0) shape(keep_B, keep_T);
  if (keep_T > 0 && mem_) {  // the counting pass replaced the views: bind them again
    Arena bound(mem_.get(), held_);
    take_all(bound);
  }
  parts_ = counted;
  return count.bytes();
}

template <class B>
size_t Model<B>::op_scratch_bytes(int64_t batch, int64_t T) const {
  // The longest query or key range of one attention call (the ring's calls, merged chunks
  // included: up to T_loc rows with zigzag).
  int64_t keys = 0;
  const int sp = par_.sp ? par_.sp->size() : 1;
  std::vector<SeqLayout> all;
  for (int r = 0; r < sp; ++r) all.push_back(seq_layout(T, r, sp, par_.ring == Ring::zigzag));
  for (const SeqLayout& q : all)
    for (const SeqLayout& k : all)
      for (const RingCall& c : ring_calls(q, k, tp_.NH, tp_.NKV, m_.head_size())) keys = std::max({keys, c.qn, c.kn});
  ScratchShape s;
  s.keys = keys, s.NH = tp_.NH, s.HS = m_.head_size();
  s.rows = batch * (T / sp), s.C = m_.d_model, s.V = tp_.V;
  return B::op_scratch_bytes(s);
}

template <class B>
void Model<B>::configure(int64_t Bn, int64_t T, double theta) {
  shape(Bn, T);
  Arena count;
  take_all(count);
  if (count.bytes() > held_) {  // free the old block first: old + new would not fit at the largest stages
    mem_.reset();
    mem_ = be_.alloc(count.bytes()), held_ = count.bytes();
  }
  Arena bound(mem_.get(), held_);
  take_all(bound);
  be_.reserve_scratch(op_scratch_bytes(Bn, T));
  const std::vector<int64_t> pos = seq().positions();
  be_.rope_table(cos_, sin_, pos, theta);
}

template <class B>
double Model<B>::flops_per_token_fwd() const {
  const double C = double(m_.d_model), HS = double(m_.head_size()), NH = double(m_.n_heads);
  const double NKV = double(m_.n_kv_heads), F = double(m_.d_ff), V = double(m_.vocab_size);
  const double mm = C * (2 * NH * HS + 2 * NKV * HS) + 3 * C * F;  // weights per layer
  const double attn = 2.0 * NH * HS * double(T_);                    // causal: half of 4·T·HS·NH
  return double(m_.n_layers) * (2.0 * mm + attn) + 2.0 * C * V;
}

template <class B>
Tensor<const typename B::Act> Model<B>::gather_rows(Tensor<const Act> rows, Tensor<Act> full) {
  if (!rs_) return rows;
  par_.tp->all_gather(rows.data, full.data, Nr_ * m_.d_model, be_.compute());
  return full;
}

// Sums the partial (N, C) products of the row-parallel matmuls over tp; returns the (Nr, C) rows
// of this rank: in rows_ (reduce_scatter) or in `full` itself (all_reduce).
template <class B>
Tensor<typename B::Act> Model<B>::reduce_partial(Tensor<Act> full) {
  if (rs_) {
    par_.tp->reduce_scatter_sum(full.data, rows_.data, Nr_ * m_.d_model, be_.compute());
    return rows_;
  }
  if (par_.tp) par_.tp->all_reduce_sum(full, be_.compute());
  return full;
}

template <class B>
void Model<B>::reduce_rows(Tensor<Act> full, Tensor<Act> rows) {
  be_.copy(rows, Tensor<const Act>(reduce_partial(full)));
}

template <class B>
void Model<B>::embed(Tensor<const int32_t> tokens, Tensor<Act> x0) {
  if (!par_.tp || par_.tp->size() == 1) {
    be_.embedding_fwd(x0, tokens, p_.embed, 0);
    return;
  }
  be_.embedding_fwd(full_, tokens, p_.embed, tp_.v0);  // zeros outside the slice
  reduce_rows(full_, x0);
}

template <class B>
typename Model<B>::LayerActs& Model<B>::acts_for(int64_t l) {
  if (!recompute_) return acts_[size_t(l)];
  if (keep_att_) scratch_.att = att_keep_[size_t(l)], scratch_.lse = lse_keep_[size_t(l)];
  return scratch_;
}

template <class B>
void Model<B>::layer_forward(int64_t l, LayerActs& a, Tensor<Act> x_out, bool attention) {
  const int64_t HS = m_.head_size(), NH = tp_.NH, NKV = tp_.NKV, Tl = seq().T_loc;
  const float eps = float(m_.norm_eps);
  const LayerView<Param>& w = p_.layers[size_t(l)];
  a.x_in = x_in_[size_t(l)];
  be_.rmsnorm_fwd(rs_ ? rows_ : a.xn1, a.rstd1, a.x_in, w.attn_norm, eps);
  gather_rows(rows_, a.xn1);
  be_.linear_fwd(a.q, a.xn1, w.wq);
  be_.linear_fwd(a.k, a.xn1, w.wk);
  be_.linear_fwd(a.v, a.xn1, w.wv);
  be_.rope_apply(a.q.view({B_, Tl, NH, HS}), cos_, sin_, +1);
  be_.rope_apply(a.k.view({B_, Tl, NKV, HS}), cos_, sin_, +1);
  if (attention) ring_.forward(a.att, a.lse, a.q, a.k, a.v);
  be_.linear_fwd(full_, a.att, w.wo);
  be_.add(a.x_mid, a.x_in, reduce_partial(full_));
  be_.rmsnorm_fwd(rs_ ? rows_ : a.xn2, a.rstd2, a.x_mid, w.mlp_norm, eps);
  gather_rows(rows_, a.xn2);
  be_.linear_fwd(a.gate, a.xn2, w.w_gate);
  be_.linear_fwd(a.up, a.xn2, w.w_up);
  be_.swiglu_fwd(a.h, a.gate, a.up);
  be_.linear_fwd(full_, a.h, w.w_down);
  be_.add(x_out, a.x_mid, reduce_partial(full_));
}

// dres: on entry d(loss)/d(layer output); on exit d(loss)/d(layer input) (residual, in place).
template <class B>
void Model<B>::layer_backward(int64_t l, LayerActs& a, Tensor<Act> dres) {
  const int64_t HS = m_.head_size(), NH = tp_.NH, NKV = tp_.NKV, Tl = seq().T_loc;
  const LayerView<Param>& w = p_.layers[size_t(l)];
  const LayerView<float>& g = g_.layers[size_t(l)];
  // MLP: out = x_mid + h @ w_down^T
  Tensor<const Act> d = gather_rows(dres, full_);
  be_.linear_bwd(dh_, g.w_down, d, a.h, w.w_down, false);
  be_.swiglu_bwd(dgate_, dup_, dh_, a.gate, a.up);
  be_.linear_bwd(dxn_, g.w_gate, dgate_, a.xn2, w.w_gate, false);
  be_.linear_bwd(dxn_, g.w_up, dup_, a.xn2, w.w_up, true);
  be_.rmsnorm_bwd(dres, g.mlp_norm, reduce_partial(dxn_), a.x_mid, w.mlp_norm, a.rstd2);  // dres = d x_mid
  // Attention: x_mid = x_in + att @ wo^T
  d = gather_rows(dres, full_);
  be_.linear_bwd(datt_, g.wo, d, a.att, w.wo, false);
  ring_.backward(dq_, dk_, dv_, datt_, a.q, a.k, a.v, a.att, a.lse);
  be_.rope_apply(dq_.view({B_, Tl, NH, HS}), cos_, sin_, -1);
  be_.rope_apply(dk_.view({B_, Tl, NKV, HS}), cos_, sin_, -1);
  be_.linear_bwd(dxn_, g.wq, dq_, a.xn1, w.wq, false);
  be_.linear_bwd(dxn_, g.wk, dk_, a.xn1, w.wk, true);
  be_.linear_bwd(dxn_, g.wv, dv_, a.xn1, w.wv, true);
  be_.rmsnorm_bwd(dres, g.attn_norm, reduce_partial(dxn_), a.x_in, w.attn_norm, a.rstd1);  // dres = d x_in
}

template <class B>
LossSum Model<B>::head(Tensor<const int32_t> targets, bool with_grad, const RowStats& rows) {
  const int64_t L = m_.n_layers;
  be_.rmsnorm_fwd(rs_ ? rows_ : xf_, rstdf_, x_in_[size_t(L)], p_.norm, float(m_.norm_eps));
  gather_rows(rows_, xf_);
  return lm_.loss(xf_, p_.lm_head, targets, tp_.v0, with_grad ? dxf_ : Tensor<Act>{},
                  with_grad ? g_.lm_head : Tensor<float>{}, 1.0f, rows);
}

template <class B>
LossSum Model<B>::forward_backward(const int32_t* tokens, const int32_t* targets) {
  CHECK(N_ > 0 && mem_, "Model: configure() before the first micro-batch");
  CHECK(g_.embed.data, "Model: built without gradients (forward only)");
  const int64_t L = m_.n_layers;
  const Tensor<const int32_t> tok = be_.upload(tok_, tokens, N_), tgt = be_.upload(tgt_, targets, N_);
  embed(tok, x_in_[0]);
  for (int64_t l = 0; l < L; ++l) layer_forward(l, acts_for(l), x_in_[size_t(l + 1)]);
  const LossSum r = head(tgt, true);
  be_.fill(dres_, 0.0f);
  be_.rmsnorm_bwd(dres_, g_.norm, reduce_partial(dxf_), x_in_[size_t(L)], p_.norm, rstdf_);
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerActs& a = acts_for(l);
    // Same ops, same inputs: bit-identical; the kept attention is the first pass's own.
    if (recompute_) layer_forward(l, a, xf_.rows(0, Nr_), !keep_att_);
    layer_backward(l, a, dres_);
  }
  be_.embedding_bwd(g_.embed, gather_rows(dres_, full_), tok, tp_.v0);
  return r;
}

template <class B>
LossSum Model<B>::forward(const int32_t* tokens, const int32_t* targets, const RowStats& rows) {
  CHECK(N_ > 0 && mem_, "Model: configure() before the first micro-batch");
  const Tensor<const int32_t> tok = be_.upload(tok_, tokens, N_), tgt = be_.upload(tgt_, targets, N_);
  embed(tok, x_in_[0]);
  for (int64_t l = 0; l < m_.n_layers; ++l) layer_forward(l, acts_for(l), x_in_[size_t(l + 1)]);
  return head(tgt, false, rows);
}

template class Model<Cpu>;
#if defined(LONGCTX_CUDA)
template class Model<Cuda>;
#endif

// The memory plan's probes (backend/counting.h): the counting members only.
#define LONGCTX_COUNTING_MODEL(B)                                                                           \
  template Model<Counting<B>>::Model(const Counting<B>&, const ModelConfig&, const ParamLayout&,            \
                                     Counting<B>::Param*, float*, const ModelParallel&);                    \
  template size_t Model<Counting<B>>::arena_bytes(int64_t, int64_t);                                        \
  template size_t Model<Counting<B>>::op_scratch_bytes(int64_t, int64_t) const;
LONGCTX_COUNTING_MODEL(Cpu)
#if defined(LONGCTX_CUDA)
LONGCTX_COUNTING_MODEL(Cuda)
#endif

}  // namespace longctx
