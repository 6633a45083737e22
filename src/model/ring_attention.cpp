// ring_attention.cpp — zigzag / contiguous ring attention over the CPU blockwise kernel.
#include "longctx/ring_attention.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx {

std::vector<int64_t> SeqLayout::positions() const {
  std::vector<int64_t> p(static_cast<size_t>(T_loc));
  for (const auto& s : segs)
    for (int64_t i = 0; i < s.len; ++i) p[size_t(s.local0 + i)] = s.pos0 + i;
  return p;
}

SeqLayout seq_layout(int64_t T, int rank, int sp, bool zigzag) {
  SeqLayout l;
  l.T = T;
  if (sp == 1) {
    l.T_loc = T, l.segs = {{0, T, 0}};
    return l;
  }
  if (zigzag) {
    CHECK(T % (2 * sp) == 0, "zigzag ring: seq_len {} is not divisible by 2·sp = {}", T, 2 * sp);
    const int64_t c = T / (2 * sp);
    l.T_loc = 2 * c, l.segs = {{rank * c, c, 0}, {(2 * sp - 1 - rank) * c, c, c}};
  } else {
    CHECK(T % sp == 0, "contiguous ring: seq_len {} is not divisible by sp = {}", T, sp);
    l.T_loc = T / sp, l.segs = {{rank * l.T_loc, l.T_loc, 0}};
  }
  return l;
}

RingAttention::RingAttention(const Comm* sp, bool zigzag) : sp_(sp), zigzag_(zigzag) {
  if (sp_) rank_ = sp_->rank(), size_ = sp_->size();
}

void RingAttention::configure(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
  B_ = B, NH_ = NH, NKV_ = NKV, HS_ = HS;
  mine_ = seq_layout(T, rank_, size_, zigzag_);
  owners_.clear();
  for (int r = 0; r < size_; ++r) owners_.push_back(seq_layout(T, r, size_, zigzag_));
  kv_n_ = B * mine_.T_loc * NKV * HS;
  delta_.resize(size_t(B * mine_.T_loc * NH));
  part_.resize(size_t(2 * kv_n_));
  if (size_ > 1)
    for (auto* v : {&kv_[0], &kv_[1], &send_, &recv_}) v->resize(size_t(2 * kv_n_));
}

void RingAttention::progress() {
  for (Comm::Pending* p : pending_)
    if (p) sp_->progress(*p);
}

void RingAttention::step_forward(int owner, float* o, float* lse, const float* q, const float* k,
                                 const float* v) {
  const int64_t Tl = mine_.T_loc;
  for (int64_t b = 0; b < B_; ++b)
    for (const auto& qs : mine_.segs)
      for (const auto& ks : owners_[size_t(owner)].segs) {
        if (ks.pos0 > qs.pos0 + qs.len - 1) continue;  // every key in this chunk is in the future
        const cpu::AttnShape s{1, qs.len, ks.len, NH_, NKV_, HS_, qs.pos0, ks.pos0, true};
        const int64_t qr = b * Tl + qs.local0, kr = b * Tl + ks.local0;
        cpu::attention_fwd(o + qr * NH_ * HS_, lse + qr * NH_, q + qr * NH_ * HS_,
                           k + kr * NKV_ * HS_, v + kr * NKV_ * HS_, s, /*merge=*/true);
        progress();
      }
}

void RingAttention::forward(float* o, float* lse, const float* q, const float* k, const float* v) {
  const int64_t rows = B_ * mine_.T_loc;
  std::fill_n(o, rows * NH_ * HS_, 0.0f);
  std::fill_n(lse, rows * NH_, -std::numeric_limits<float>::infinity());
  if (size_ == 1) {
    step_forward(0, o, lse, q, k, v);
    return;
  }
  std::copy_n(k, kv_n_, kv_[0].data());
  std::copy_n(v, kv_n_, kv_[0].data() + kv_n_);
  const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  for (int i = 0; i < size_; ++i) {
    float* cur = kv_[i % 2].data();
    Comm::Pending p;
    if (i + 1 < size_) sp_->exchange(cur, kv_[(i + 1) % 2].data(), 2 * kv_n_, next, prev, 1, p);
    pending_[0] = &p;
    step_forward((rank_ - i + size_) % size_, o, lse, q, cur, cur + kv_n_);
    pending_[0] = nullptr;
    sp_->wait(p);
  }
}

void RingAttention::step_backward(int owner, float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v, const float* lse) {
  const int64_t Tl = mine_.T_loc;
  for (int64_t b = 0; b < B_; ++b)
    for (const auto& qs : mine_.segs)
      for (const auto& ks : owners_[size_t(owner)].segs) {
        if (ks.pos0 > qs.pos0 + qs.len - 1) continue;
        const cpu::AttnShape s{1, qs.len, ks.len, NH_, NKV_, HS_, qs.pos0, ks.pos0, true};
        const int64_t qr = b * Tl + qs.local0, kr = b * Tl + ks.local0;
        cpu::attention_bwd(dq + qr * NH_ * HS_, dk + kr * NKV_ * HS_, dv + kr * NKV_ * HS_,
                           dout + qr * NH_ * HS_, q + qr * NH_ * HS_, k + kr * NKV_ * HS_,
                           v + kr * NKV_ * HS_, lse + qr * NH_, delta_.data() + qr * NH_, s);
        progress();
      }
}

void RingAttention::backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                             const float* k, const float* v, const float* o, const float* lse) {
  const int64_t Tl = mine_.T_loc;
  cpu::attention_delta(delta_.data(), o, dout, cpu::AttnShape{B_, Tl, Tl, NH_, NKV_, HS_});
  std::fill_n(dq, B_ * Tl * NH_ * HS_, 0.0f);
  if (size_ == 1) {
    std::fill_n(dk, kv_n_, 0.0f), std::fill_n(dv, kv_n_, 0.0f);
    step_backward(0, dq, dk, dv, dout, q, k, v, lse);
    return;
  }
  std::copy_n(k, kv_n_, kv_[0].data());
  std::copy_n(v, kv_n_, kv_[0].data() + kv_n_);
  const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  Comm::Pending dkv;  // the accumulated dK/dV travelling one step behind its K/V block
  for (int i = 0; i < size_; ++i) {
    float* cur = kv_[i % 2].data();
    Comm::Pending p;
    if (i + 1 < size_) sp_->exchange(cur, kv_[(i + 1) % 2].data(), 2 * kv_n_, next, prev, 1, p);
    std::fill(part_.begin(), part_.end(), 0.0f);
    pending_[0] = &p, pending_[1] = &dkv;
    step_backward((rank_ - i + size_) % size_, dq, part_.data(), part_.data() + kv_n_, dout, q, cur,
                  cur + kv_n_, lse);
    pending_[0] = pending_[1] = nullptr;
    sp_->wait(dkv);  // recv_ = what earlier visitors accumulated for this block (none at i = 0)
    for (int64_t j = 0; j < 2 * kv_n_; ++j) send_[size_t(j)] = (i ? recv_[size_t(j)] : 0.0f) + part_[size_t(j)];
    sp_->exchange(send_.data(), recv_.data(), 2 * kv_n_, next, prev, 2, dkv);
    sp_->wait(p);
  }
  sp_->wait(dkv);  // after sp steps every block's dK/dV is back with its owner
  std::copy_n(recv_.data(), kv_n_, dk);
  std::copy_n(recv_.data() + kv_n_, kv_n_, dv);
}

}  // namespace longctx
