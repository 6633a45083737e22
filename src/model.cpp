// model.cpp — forward/backward of the Llama stack on the CPU reference ops (include/longctx/ops.h).
#include "longctx/model.h"

#include <cstring>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx {

using namespace cpu;

Model::Model(const ModelConfig& m, const ParamLayout& layout, float* params, float* grads)
    : m_(m), p_(view_of(m, layout, params)), g_(view_of(m, layout, grads)), recompute_(m.recompute) {}

void Model::configure(int64_t B, int64_t T, const std::vector<int64_t>& pos, double theta) {
  CHECK(B > 0 && T > 0 && int64_t(pos.size()) == T, "Model::configure: B={} T={} positions={}", B,
        T, pos.size());
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = m_.n_heads, NKV = m_.n_kv_heads;
  const int64_t F = m_.d_ff, V = m_.vocab_size, L = m_.n_layers, N = B * T;
  B_ = B, T_ = T, N_ = N;
  chunk_ = std::max<int64_t>(1, std::min<int64_t>(N, (int64_t(1) << 22) / V));  // <= 16 MiB logits
  if (N > cap_N_) {  // (re)allocate every buffer for the larger shape
    cap_N_ = N;
    const int64_t layer_floats = N * (5 * C + 2 + 2 * NH * HS + 2 * NKV * HS + 3 * F) + B * NH * T;
    const int64_t sets = recompute_ ? 1 : L;
    const int64_t other = (L + 1) * N * C + N * (3 * C + 1) + chunk_ * V + N * (2 * C + 3 * F) +
                          N * (2 * NH * HS + 2 * NKV * HS) + B * NH * T + T * HS;
    arena_.assign(size_t(sets * layer_floats + other), 0.0f);
    float* cur = arena_.data();
    auto take = [&](int64_t n) { float* p = cur; cur += n; return p; };
    auto make_set = [&]() {
      LayerActs a{};
      a.x_in = nullptr;  // set per layer from x_in_
      a.xn1 = take(N * C), a.rstd1 = take(N), a.q = take(N * NH * HS), a.k = take(N * NKV * HS);
      a.v = take(N * NKV * HS), a.att = take(N * NH * HS), a.lse = take(B * NH * T);
      a.x_mid = take(N * C), a.xn2 = take(N * C), a.rstd2 = take(N), a.gate = take(N * F);
      a.up = take(N * F), a.h = take(N * F);
      return a;
    };
    acts_.clear();
    if (recompute_) scratch_ = make_set();
    else
      for (int64_t l = 0; l < L; ++l) acts_.push_back(make_set());
    x_in_.assign(size_t(L + 1), nullptr);
    for (auto& x : x_in_) x = take(N * C);
    xf_ = take(N * C), rstdf_ = take(N), dxf_ = take(N * C), logits_ = take(chunk_ * V);
    dres_ = take(N * C), dxn_ = take(N * C), dh_ = take(N * F), dgate_ = take(N * F);
    dup_ = take(N * F), datt_ = take(N * NH * HS), dq_ = take(N * NH * HS);
    dk_ = take(N * NKV * HS), dv_ = take(N * NKV * HS), delta_ = take(B * NH * T);
    cos_ = take(T * HS / 2), sin_ = take(T * HS / 2);
    CHECK(cur <= arena_.data() + arena_.size(), "Model::configure: arena accounting is wrong");
  }
  rope_table(cos_, sin_, pos.data(), T, HS, theta);
}

double Model::flops_per_token_fwd() const {
  const double C = double(m_.d_model), HS = double(m_.head_size()), NH = double(m_.n_heads);
  const double NKV = double(m_.n_kv_heads), F = double(m_.d_ff), V = double(m_.vocab_size);
  const double mm = C * (2 * NH * HS + 2 * NKV * HS) + 3 * C * F;         // weights per layer
  const double attn = 2.0 * NH * HS * double(T_);                           // causal: half of 4·T·HS
  return double(m_.n_layers) * (2.0 * mm + attn) + 2.0 * C * V;
}

void Model::layer_forward(int64_t l, LayerActs& a, float* x_out) {
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = m_.n_heads, NKV = m_.n_kv_heads;
  const int64_t F = m_.d_ff, N = N_;
  const LayerView& w = p_.layers[size_t(l)];
  a.x_in = x_in_[size_t(l)];
  rmsnorm_fwd(a.xn1, a.rstd1, a.x_in, w.attn_norm, N, C, float(m_.norm_eps));
  linear_fwd(a.q, a.xn1, w.wq, N, C, NH * HS);
  linear_fwd(a.k, a.xn1, w.wk, N, C, NKV * HS);
  linear_fwd(a.v, a.xn1, w.wv, N, C, NKV * HS);
  rope_apply(a.q, cos_, sin_, B_, T_, NH, HS, +1);
  rope_apply(a.k, cos_, sin_, B_, T_, NKV, HS, +1);
  const AttnShape s{B_, T_, T_, NH, NKV, HS};
  attention_fwd(a.att, a.lse, a.q, a.k, a.v, s, false);
  linear_fwd(a.x_mid, a.att, w.wo, N, NH * HS, C);
  for (int64_t i = 0; i < N * C; ++i) a.x_mid[i] += a.x_in[i];
  rmsnorm_fwd(a.xn2, a.rstd2, a.x_mid, w.mlp_norm, N, C, float(m_.norm_eps));
  linear_fwd(a.gate, a.xn2, w.w_gate, N, C, F);
  linear_fwd(a.up, a.xn2, w.w_up, N, C, F);
  swiglu_fwd(a.h, a.gate, a.up, N * F);
  linear_fwd(x_out, a.h, w.w_down, N, F, C);
  for (int64_t i = 0; i < N * C; ++i) x_out[i] += a.x_mid[i];
}

// dres: on entry d(loss)/d(layer output); on exit d(loss)/d(layer input) (residual, in place).
void Model::layer_backward(int64_t l, LayerActs& a, float* dres) {
  const int64_t C = m_.d_model, HS = m_.head_size(), NH = m_.n_heads, NKV = m_.n_kv_heads;
  const int64_t F = m_.d_ff, N = N_;
  const LayerView& w = p_.layers[size_t(l)];
  const LayerView& g = g_.layers[size_t(l)];
  // MLP: out = x_mid + h @ w_down^T
  linear_bwd(dh_, g.w_down, dres, a.h, w.w_down, N, F, C, false);
  swiglu_bwd(dgate_, dup_, dh_, a.gate, a.up, N * F);
  linear_bwd(dxn_, g.w_gate, dgate_, a.xn2, w.w_gate, N, C, F, false);
  linear_bwd(dxn_, g.w_up, dup_, a.xn2, w.w_up, N, C, F, true);
  rmsnorm_bwd(dres, g.mlp_norm, dxn_, a.x_mid, w.mlp_norm, a.rstd2, N, C);  // dres = d x_mid
  // Attention: x_mid = x_in + att @ wo^T
  linear_bwd(datt_, g.wo, dres, a.att, w.wo, N, NH * HS, C, false);
  const AttnShape s{B_, T_, T_, NH, NKV, HS};
  std::memset(dq_, 0, sizeof(float) * size_t(N * NH * HS));
  std::memset(dk_, 0, sizeof(float) * size_t(N * NKV * HS));
  std::memset(dv_, 0, sizeof(float) * size_t(N * NKV * HS));
  attention_delta(delta_, a.att, datt_, s);
  attention_bwd(dq_, dk_, dv_, datt_, a.q, a.k, a.v, a.lse, delta_, s);
  rope_apply(dq_, cos_, sin_, B_, T_, NH, HS, -1);
  rope_apply(dk_, cos_, sin_, B_, T_, NKV, HS, -1);
  linear_bwd(dxn_, g.wq, dq_, a.xn1, w.wq, N, C, NH * HS, false);
  linear_bwd(dxn_, g.wk, dk_, a.xn1, w.wk, N, C, NKV * HS, true);
  linear_bwd(dxn_, g.wv, dv_, a.xn1, w.wv, N, C, NKV * HS, true);
  rmsnorm_bwd(dres, g.attn_norm, dxn_, a.x_in, w.attn_norm, a.rstd1, N, C);  // dres = d x_in
}

LossSum Model::head(const int32_t* targets, bool with_grad) {
  const int64_t C = m_.d_model, V = m_.vocab_size, L = m_.n_layers;
  rmsnorm_fwd(xf_, rstdf_, x_in_[size_t(L)], p_.norm, N_, C, float(m_.norm_eps));
  LossSum r;
  r.sum = lm_head_xent(xf_, p_.lm_head, targets, N_, C, V, with_grad ? dxf_ : nullptr,
                       with_grad ? g_.lm_head : nullptr, 1.0f, logits_, chunk_, &r.count);
  return r;
}

LossSum Model::forward_backward(const int32_t* tokens, const int32_t* targets) {
  CHECK(N_ > 0, "Model: configure() before the first micro-batch");
  const int64_t C = m_.d_model, L = m_.n_layers;
  embedding_fwd(x_in_[0], tokens, p_.embed, N_, C);
  for (int64_t l = 0; l < L; ++l) layer_forward(l, acts_for(l), x_in_[size_t(l + 1)]);
  const LossSum r = head(targets, true);
  std::memset(dres_, 0, sizeof(float) * size_t(N_ * C));
  rmsnorm_bwd(dres_, g_.norm, dxf_, x_in_[size_t(L)], p_.norm, rstdf_, N_, C);
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerActs& a = acts_for(l);
    if (recompute_) layer_forward(l, a, xf_);  // same ops, same inputs: bit-identical activations
    layer_backward(l, a, dres_);
  }
  embedding_bwd(g_.embed, dres_, tokens, N_, C);
  return r;
}

LossSum Model::forward(const int32_t* tokens, const int32_t* targets) {
  CHECK(N_ > 0, "Model: configure() before the first micro-batch");
  embedding_fwd(x_in_[0], tokens, p_.embed, N_, m_.d_model);
  for (int64_t l = 0; l < m_.n_layers; ++l) layer_forward(l, acts_for(l), x_in_[size_t(l + 1)]);
  return head(targets, false);
}

}  // namespace longctx
