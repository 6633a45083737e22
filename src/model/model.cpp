// model.cpp — forward/backward of the Llama stack on the CPU reference ops (include/longctx/ops.h),
// tensor-parallel over par_.tp and sequence-parallel (ring attention) over par_.sp; see model.h.
#include "longctx/model.h"

#include <cstring>

#include "longctx/common.h"
#include "longctx/lm_head.h"
#include "longctx/ops.h"

namespace longctx {

using namespace cpu;

Model::Model(const ModelConfig& m, const ParamLayout& layout, float* params, float* grads,
             const ModelParallel& par)
    : m_(m), par_(par), tp_(tp_shard(m, par.tp ? par.tp->rank() : 0, par.tp ? par.tp->size() : 1)),
      p_(view_of(m, layout, params)), g_(view_of(m, layout, grads)), recompute_(m.recompute),
      rs_(par.reduce_scatter && par.tp && par.tp->size() > 1), ring_(par.sp, par.zigzag) {}

void Model::configure(int64_t B, int64_t T, double theta) {
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = tp_.NH, NKV = tp_.NKV, F = tp_.F;
  ring_.configure(B, T, NH, NKV, HS);
  const int64_t Tl = seq().T_loc, N = B * Tl;
  CHECK(!rs_ || N % tp_.size == 0, "reduce_scatter: {} local rows are not divisible by tp = {}", N,
        tp_.size);
  B_ = B, T_ = T, N_ = N, Nr_ = rs_ ? N / tp_.size : N;
  const int64_t L = m_.n_layers, max_chunk = std::max<int64_t>(1, (int64_t(1) << 22) / tp_.V);
  chunk_ = std::min(N, max_chunk);  // at most 16 MiB of logits
  if (N > cap_ || Tl > cap_T_) {  // (re)allocate for the largest shape so far: count, then hand out
    cap_ = std::max(cap_, N), cap_T_ = std::max(cap_T_, Tl);
    // Sizes below are for cap_ rows and cap_T_ positions; a smaller stage uses a prefix of each.
    const int64_t N = cap_, Nr = rs_ ? cap_ / tp_.size : cap_, Tc = cap_T_;
    const int64_t chunk = std::min(N, max_chunk);
    float* base = nullptr;
    int64_t used = 0;
    auto take = [&](int64_t n) { float* p = base ? base + used : nullptr; used += n; return p; };
    auto make_set = [&]() {
      LayerActs a{};
      a.xn1 = take(N * C), a.rstd1 = take(Nr), a.q = take(N * NH * HS), a.k = take(N * NKV * HS);
      a.v = take(N * NKV * HS), a.att = take(N * NH * HS), a.lse = take(N * NH);
      a.x_mid = take(Nr * C), a.xn2 = take(N * C), a.rstd2 = take(Nr), a.gate = take(N * F);
      a.up = take(N * F), a.h = take(N * F);
      return a;
    };
    for (int pass = 0; pass < 2; ++pass) {
      if (pass == 1) {  // free the old arena first: old + new would not fit at the largest stages
        std::vector<float>().swap(arena_);
        arena_.assign(size_t(used), 0.0f), base = arena_.data(), used = 0;
      }
      acts_.clear();
      if (recompute_) scratch_ = make_set();
      else
        for (int64_t l = 0; l < L; ++l) acts_.push_back(make_set());
      x_in_.assign(size_t(L + 1), nullptr);
      for (auto& x : x_in_) x = take(Nr * C);
      xf_ = take(N * C), rstdf_ = take(Nr), dxf_ = take(N * C), logits_ = take(chunk * tp_.V);
      dres_ = take(Nr * C), dxn_ = take(N * C), dh_ = take(N * F), dgate_ = take(N * F);
      dup_ = take(N * F), datt_ = take(N * NH * HS), dq_ = take(N * NH * HS);
      dk_ = take(N * NKV * HS), dv_ = take(N * NKV * HS);
      cos_ = take(Tc * HS / 2), sin_ = take(Tc * HS / 2), full_ = take(N * C);
      rows_ = take(rs_ ? Nr * C : 0);  // the row-split scratch (reduce_scatter mode only)
    }
  }
  rope_table(cos_, sin_, seq().positions().data(), Tl, HS, theta);
}

double Model::flops_per_token_fwd() const {
  const double C = double(m_.d_model), HS = double(m_.head_size()), NH = double(m_.n_heads);
  const double NKV = double(m_.n_kv_heads), F = double(m_.d_ff), V = double(m_.vocab_size);
  const double mm = C * (2 * NH * HS + 2 * NKV * HS) + 3 * C * F;  // weights per layer
  const double attn = 2.0 * NH * HS * double(T_);                    // causal: half of 4·T·HS·NH
  return double(m_.n_layers) * (2.0 * mm + attn) + 2.0 * C * V;
}

const float* Model::gather_rows(const float* rows, float* full) {
  if (!rs_) return rows;
  par_.tp->all_gather(rows, full, Nr_ * m_.d_model);
  return full;
}

// Sums the partial (N, C) products of the row-parallel matmuls over tp; returns the (Nr, C) rows
// of this rank: in `rows` (reduce_scatter) or in `full` itself (all_reduce).
static float* reduce_partial(const ModelParallel& par, bool rs, float* full, float* rows,
                             int64_t N, int64_t Nr, int64_t C) {
  if (rs) {
    par.tp->reduce_scatter_sum(full, rows, Nr * C);
    return rows;
  }
  if (par.tp) par.tp->all_reduce_sum(full, N * C);
  return full;
}

void Model::reduce_rows(float* full, float* rows) {
  float* r = reduce_partial(par_, rs_, full, rows, N_, Nr_, m_.d_model);
  if (r != rows) std::memcpy(rows, r, sizeof(float) * size_t(Nr_ * m_.d_model));
}

void Model::embed(const int32_t* tokens, float* x0) {
  const int64_t C = m_.d_model;
  if (!par_.tp || par_.tp->size() == 1) {
    embedding_fwd(x0, tokens, p_.embed, N_, C, 0, tp_.V);
    return;
  }
  embedding_fwd(full_, tokens, p_.embed, N_, C, tp_.v0, tp_.V);  // zeros outside the slice
  reduce_rows(full_, x0);
}

void Model::layer_forward(int64_t l, LayerActs& a, float* x_out) {
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = tp_.NH, NKV = tp_.NKV, F = tp_.F;
  const int64_t N = N_, Nr = Nr_, Tl = seq().T_loc;
  const float eps = float(m_.norm_eps);
  const LayerView& w = p_.layers[size_t(l)];
  a.x_in = x_in_[size_t(l)];
  rmsnorm_fwd(rs_ ? rows_ : a.xn1, a.rstd1, a.x_in, w.attn_norm, Nr, C, eps);
  gather_rows(rows_, a.xn1);
  linear_fwd(a.q, a.xn1, w.wq, N, C, NH * HS);
  linear_fwd(a.k, a.xn1, w.wk, N, C, NKV * HS);
  linear_fwd(a.v, a.xn1, w.wv, N, C, NKV * HS);
  rope_apply(a.q, cos_, sin_, B_, Tl, NH, HS, +1);
  rope_apply(a.k, cos_, sin_, B_, Tl, NKV, HS, +1);
  ring_.forward(a.att, a.lse, a.q, a.k, a.v);
  linear_fwd(full_, a.att, w.wo, N, NH * HS, C);
  const float* y = reduce_partial(par_, rs_, full_, rows_, N, Nr, C);
  for (int64_t i = 0; i < Nr * C; ++i) a.x_mid[i] = a.x_in[i] + y[i];
  rmsnorm_fwd(rs_ ? rows_ : a.xn2, a.rstd2, a.x_mid, w.mlp_norm, Nr, C, eps);
  gather_rows(rows_, a.xn2);
  linear_fwd(a.gate, a.xn2, w.w_gate, N, C, F);
  linear_fwd(a.up, a.xn2, w.w_up, N, C, F);
  swiglu_fwd(a.h, a.gate, a.up, N * F);
  linear_fwd(full_, a.h, w.w_down, N, F, C);
  y = reduce_partial(par_, rs_, full_, rows_, N, Nr, C);
  for (int64_t i = 0; i < Nr * C; ++i) x_out[i] = a.x_mid[i] + y[i];
}

// dres: on entry d(loss)/d(layer output); on exit d(loss)/d(layer input) (residual, in place).
void Model::layer_backward(int64_t l, LayerActs& a, float* dres) {
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = tp_.NH, NKV = tp_.NKV, F = tp_.F;
  const int64_t N = N_, Nr = Nr_, Tl = seq().T_loc;
  const LayerView& w = p_.layers[size_t(l)];
  const LayerView& g = g_.layers[size_t(l)];
  // MLP: out = x_mid + h @ w_down^T
  const float* d = gather_rows(dres, full_);
  linear_bwd(dh_, g.w_down, d, a.h, w.w_down, N, F, C, false);
  swiglu_bwd(dgate_, dup_, dh_, a.gate, a.up, N * F);
  linear_bwd(dxn_, g.w_gate, dgate_, a.xn2, w.w_gate, N, C, F, false);
  linear_bwd(dxn_, g.w_up, dup_, a.xn2, w.w_up, N, C, F, true);
  const float* dxn = reduce_partial(par_, rs_, dxn_, rows_, N, Nr, C);
  rmsnorm_bwd(dres, g.mlp_norm, dxn, a.x_mid, w.mlp_norm, a.rstd2, Nr, C);  // dres = d x_mid
  // Attention: x_mid = x_in + att @ wo^T
  d = gather_rows(dres, full_);
  linear_bwd(datt_, g.wo, d, a.att, w.wo, N, NH * HS, C, false);
  ring_.backward(dq_, dk_, dv_, datt_, a.q, a.k, a.v, a.att, a.lse);
  rope_apply(dq_, cos_, sin_, B_, Tl, NH, HS, -1);
  rope_apply(dk_, cos_, sin_, B_, Tl, NKV, HS, -1);
  linear_bwd(dxn_, g.wq, dq_, a.xn1, w.wq, N, C, NH * HS, false);
  linear_bwd(dxn_, g.wk, dk_, a.xn1, w.wk, N, C, NKV * HS, true);
  linear_bwd(dxn_, g.wv, dv_, a.xn1, w.wv, N, C, NKV * HS, true);
  dxn = reduce_partial(par_, rs_, dxn_, rows_, N, Nr, C);
  rmsnorm_bwd(dres, g.attn_norm, dxn, a.x_in, w.attn_norm, a.rstd1, Nr, C);  // dres = d x_in
}

LossSum Model::head(const int32_t* targets, bool with_grad, const RowStats& rows) {
  const int64_t C = m_.d_model, L = m_.n_layers;
  rmsnorm_fwd(rs_ ? rows_ : xf_, rstdf_, x_in_[size_t(L)], p_.norm, Nr_, C, float(m_.norm_eps));
  gather_rows(rows_, xf_);
  LossSum r;
  r.sum = lm_head_loss(xf_, p_.lm_head, targets, N_, C, tp_.V, tp_.v0, with_grad ? dxf_ : nullptr,
                       with_grad ? g_.lm_head : nullptr, 1.0f, logits_, chunk_, &r.count, par_.tp, rows);
  return r;
}

LossSum Model::forward_backward(const int32_t* tokens, const int32_t* targets) {
  CHECK(N_ > 0, "Model: configure() before the first micro-batch");
  const int64_t C = m_.d_model, L = m_.n_layers;
  embed(tokens, x_in_[0]);
  for (int64_t l = 0; l < L; ++l) layer_forward(l, acts_for(l), x_in_[size_t(l + 1)]);
  const LossSum r = head(targets, true);
  const float* dxf = reduce_partial(par_, rs_, dxf_, rows_, N_, Nr_, C);
  std::memset(dres_, 0, sizeof(float) * size_t(Nr_ * C));
  rmsnorm_bwd(dres_, g_.norm, dxf, x_in_[size_t(L)], p_.norm, rstdf_, Nr_, C);
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerActs& a = acts_for(l);
    if (recompute_) layer_forward(l, a, xf_);  // same ops, same inputs: bit-identical activations
    layer_backward(l, a, dres_);
  }
  embedding_bwd(g_.embed, gather_rows(dres_, full_), tokens, N_, C, tp_.v0, tp_.V);
  return r;
}

LossSum Model::forward(const int32_t* tokens, const int32_t* targets, const RowStats& rows) {
  CHECK(N_ > 0, "Model: configure() before the first micro-batch");
  embed(tokens, x_in_[0]);
  for (int64_t l = 0; l < m_.n_layers; ++l) layer_forward(l, acts_for(l), x_in_[size_t(l + 1)]);
  return head(targets, false, rows);
}

}  // namespace longctx
