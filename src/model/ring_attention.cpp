// ring_attention.cpp — zigzag / contiguous ring attention over a backend's blockwise attention
// (ring_attention.h); instantiated for the CPU backend here.
#include "longctx/ring_attention.h"

#include <algorithm>
#include <type_traits>
#include <limits>

#include "longctx/common.h"
#include "longctx/backend/counting.h"
#include "longctx/backend/cpu.h"
#include "longctx/backend/cuda.h"
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

std::vector<RingCall> ring_calls(const SeqLayout& q, const SeqLayout& k, int64_t NH, int64_t NKV, int64_t HS) {
  std::vector<RingCall> calls;
  for (const auto& qs : q.segs)
    for (const auto& ks : k.segs) {
      if (ks.pos0 > qs.pos0 + qs.len - 1) continue;       // every key in the future: skipped
      const bool full = ks.pos0 + ks.len - 1 <= qs.pos0;  // every key at or before every query
      calls.push_back({qs.local0, qs.len, ks.local0, ks.len,
                       cpu::AttnShape{1, qs.len, ks.len, NH, NKV, HS, full ? 0 : qs.pos0, full ? 0 : ks.pos0, !full}});
    }
  // Merge full calls pairwise until none merge: the same queries and adjacent keys, or the reverse.
  for (bool merged = true; merged;) {
    merged = false;
    for (size_t i = 0; i < calls.size() && !merged; ++i)
      for (size_t j = 0; j < calls.size() && !merged; ++j) {
        RingCall &a = calls[i], &b = calls[j];
        if (i == j || a.shape.causal || b.shape.causal) continue;
        if (a.q0 == b.q0 && a.qn == b.qn && a.k0 + a.kn == b.k0) a.kn += b.kn;
        else if (a.k0 == b.k0 && a.kn == b.kn && a.q0 + a.qn == b.q0) a.qn += b.qn;
        else continue;
        a.shape.Tq = a.qn, a.shape.Tk = a.kn;
        calls.erase(calls.begin() + std::ptrdiff_t(j));
        merged = true;
      }
  }
  // Which calls add to key rows an earlier call wrote. The layouts' chunks make every call's key
  // rows either new or all touched before; a partial overlap would need zeroed rows, so it stops.
  for (size_t i = 0; i < calls.size(); ++i) {
    RingCall& c = calls[i];
    const std::vector<RingCall> before(calls.begin(), calls.begin() + std::ptrdiff_t(i));
    int64_t covered = 0;  // rows of c inside the union of the earlier calls' ranges
    for (const KeyRange& r : touched_keys(before))
      covered += std::max<int64_t>(0, std::min(c.k0 + c.kn, r.k0 + r.kn) - std::max(c.k0, r.k0));
    CHECK(covered == 0 || covered == c.kn, "ring_calls: call {} (keys {}+{}) overlaps earlier calls on {} of "
          "its {} key rows", i, c.k0, c.kn, covered, c.kn);
    c.dkv_add = covered > 0;
  }
  return calls;
}

std::vector<KeyRange> touched_keys(const std::vector<RingCall>& calls) {
  std::vector<KeyRange> r;
  for (const RingCall& c : calls) r.push_back({c.k0, c.kn});
  std::sort(r.begin(), r.end(), [](const KeyRange& a, const KeyRange& b) { return a.k0 < b.k0; });
  std::vector<KeyRange> joined;
  for (const KeyRange& x : r) {
    if (!joined.empty() && x.k0 <= joined.back().k0 + joined.back().kn)
      joined.back().kn = std::max(joined.back().kn, x.k0 + x.kn - joined.back().k0);
    else
      joined.push_back(x);
  }
  return joined;
}

namespace {
template <class Act>
constexpr bool kF32 = std::is_same_v<Act, float>;
}

template <class B>
RingAttention<B>::RingAttention(const B& be, const Comm* sp, bool zigzag) : be_(be), sp_(sp), zigzag_(zigzag) {
  if (sp_) rank_ = sp_->rank(), size_ = sp_->size();
}

template <class B>
void RingAttention<B>::configure(int64_t Bn, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
  B_ = Bn, NH_ = NH, NKV_ = NKV, HS_ = HS;
  mine_ = seq_layout(T, rank_, size_, zigzag_);
  owners_.clear(), calls_.clear(), touched_.clear();
  for (int r = 0; r < size_; ++r) owners_.push_back(seq_layout(T, r, size_, zigzag_));
  for (int r = 0; r < size_; ++r) calls_.push_back(ring_calls(mine_, owners_[size_t(r)], NH, NKV, HS));
  for (const auto& c : calls_) touched_.push_back(touched_keys(c));
  const std::vector<KeyRange>& own = touched_[size_t(rank_)];  // the backward writes its first step whole
  CHECK(own.size() == 1 && own[0].k0 == 0 && own[0].kn == mine_.T_loc,
        "ring attention: the calls of rank {}'s own block do not touch all of its {} key rows", rank_, mine_.T_loc);
  rows_ = Bn * mine_.T_loc;
}

template <class B>
void RingAttention<B>::take_buffers(Arena& a, bool with_backward) {
  const int64_t kv = NKV_ * HS_, ring = size_ > 1 ? 2 * rows_ : 0, ring_bwd = with_backward ? ring : 0;
  const int64_t wide = kF32<Act> ? 0 : rows_, wide_bwd = with_backward ? wide : 0;
  for (auto* t : {&kv_[0], &kv_[1]}) *t = a.take<Act>({ring, kv});
  o32_ = a.take<float>({wide, NH_ * HS_});
  // Backward: delta; the visiting block's dK/dV (part_) and the accumulators that travel with it.
  delta_ = a.take<float>({with_backward ? rows_ : 0, NH_});
  part_ = a.take<float>({ring_bwd, kv}), dkv_[0] = a.take<float>({ring_bwd, kv}), dkv_[1] = a.take<float>({ring_bwd, kv});
  dq32_ = a.take<float>({wide_bwd, NH_ * HS_});
  dkv32_ = a.take<float>({size_ > 1 ? 0 : 2 * wide_bwd, kv});  // one rank: dK/dV accumulate here
}

template <class B>
void RingAttention<B>::progress() {
  for (Comm::Handle* p : pending_)
    if (p) sp_->progress(*p);
}

template <class B>
void RingAttention<B>::step_forward(int owner, Tensor<float> o, Tensor<float> lse, Tensor<const Act> q,
                                    Tensor<const Act> k, Tensor<const Act> v) {
  const int64_t Tl = mine_.T_loc;
  for (int64_t b = 0; b < B_; ++b)
    for (const RingCall& c : calls_[size_t(owner)]) {
      const int64_t qr = b * Tl + c.q0, kr = b * Tl + c.k0;
      be_.attention_fwd(o.rows(qr, c.qn), lse.rows(qr, c.qn), q.rows(qr, c.qn), k.rows(kr, c.kn), v.rows(kr, c.kn),
                        c.shape, /*merge=*/true);
      progress();
    }
}

template <class B>
void RingAttention<B>::forward(Tensor<Act> o, Tensor<float> lse, Tensor<const Act> q, Tensor<const Act> k,
                               Tensor<const Act> v) {
  Tensor<float> acc;
  if constexpr (kF32<Act>) acc = o;
  else acc = o32_;
  be_.fill(acc, 0.0f);
  be_.fill(lse, -std::numeric_limits<float>::infinity());
  if (size_ == 1) {
    step_forward(0, acc, lse, q, k, v);
  } else {
    be_.copy(kv_[0].rows(0, rows_), k), be_.copy(kv_[0].rows(rows_, rows_), v);
    const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
    for (int i = 0; i < size_; ++i) {
      const Tensor<Act> cur = kv_[i % 2];
      Comm::Handle h;
      if (i + 1 < size_) h = sp_->exchange(cur, kv_[(i + 1) % 2], next, prev, 0, be_.comm());
      pending_[0] = &h;
      step_forward((rank_ - i + size_) % size_, acc, lse, q, cur.rows(0, rows_), cur.rows(rows_, rows_));
      pending_[0] = nullptr;
      sp_->wait(h);
    }
  }
  if constexpr (!kF32<Act>) be_.cast(o, Tensor<const float>(acc));
}

template <class B>
void RingAttention<B>::step_backward(int owner, Tensor<float> dq, Tensor<float> dk, Tensor<float> dv,
                                     Tensor<const Act> dout, Tensor<const Act> q, Tensor<const Act> k,
                                     Tensor<const Act> v, Tensor<const float> lse) {
  const int64_t Tl = mine_.T_loc;
  for (int64_t b = 0; b < B_; ++b)
    for (const RingCall& c : calls_[size_t(owner)]) {
      const int64_t qr = b * Tl + c.q0, kr = b * Tl + c.k0;
      be_.attention_bwd(dq.rows(qr, c.qn), dk.rows(kr, c.kn), dv.rows(kr, c.kn), dout.rows(qr, c.qn),
                        q.rows(qr, c.qn), k.rows(kr, c.kn), v.rows(kr, c.kn), lse.rows(qr, c.qn),
                        Tensor<const float>(delta_).rows(qr, c.qn), c.shape, c.dkv_add);
      progress();
    }
}

template <class B>
void RingAttention<B>::add_touched(int owner, Tensor<float> acc, Tensor<const float> part) {
  const std::vector<KeyRange>& keys = touched_[size_t(owner)];
  const int64_t Tl = mine_.T_loc;
  if (keys.size() == 1 && keys[0].kn == Tl) {  // every row: one pass over dK and dV together
    be_.add(acc, acc, part);
    return;
  }
  for (int64_t half : {int64_t(0), rows_})  // dK rows, then dV rows
    for (int64_t b = 0; b < B_; ++b)
      for (const KeyRange& r : keys) {
        const int64_t at = half + b * Tl + r.k0;
        be_.add(acc.rows(at, r.kn), acc.rows(at, r.kn), part.rows(at, r.kn));
      }
}

template <class B>
void RingAttention<B>::backward(Tensor<Act> dq, Tensor<Act> dk, Tensor<Act> dv, Tensor<const Act> dout,
                                Tensor<const Act> q, Tensor<const Act> k, Tensor<const Act> v,
                                Tensor<const Act> o, Tensor<const float> lse) {
  const int64_t Tl = mine_.T_loc;
  be_.attention_delta(delta_, o, dout, cpu::AttnShape{B_, Tl, Tl, NH_, NKV_, HS_});
  Tensor<float> dq_acc, dk_acc, dv_acc;  // fp32 accumulators: the outputs themselves when Act = float
  if constexpr (kF32<Act>) dq_acc = dq, dk_acc = dk, dv_acc = dv;
  else dq_acc = dq32_;
  be_.fill(dq_acc, 0.0f);
  if (size_ == 1) {  // the calls write dK/dV (the self step touches every key row)
    if constexpr (!kF32<Act>) dk_acc = dkv32_.rows(0, rows_), dv_acc = dkv32_.rows(rows_, rows_);
    step_backward(0, dq_acc, dk_acc, dv_acc, dout, q, k, v, lse);
  } else {
    be_.copy(kv_[0].rows(0, rows_), k), be_.copy(kv_[0].rows(rows_, rows_), v);
    const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
    Comm::Handle dkv;  // the accumulated dK/dV travelling one step behind its K/V block
    for (int i = 0; i < size_; ++i) {
      const Tensor<Act> cur = kv_[i % 2];
      Comm::Handle h;
      if (i + 1 < size_) h = sp_->exchange(cur, kv_[(i + 1) % 2], next, prev, 0, be_.comm());
      // Step 0 (this rank's own block, every key row touched) writes the accumulator itself; later
      // steps write part_ while the accumulator that earlier visitors filled is still arriving.
      const Tensor<float> acc = dkv_[i % 2], out = i == 0 ? acc : part_;
      pending_[0] = &h, pending_[1] = &dkv;
      step_backward((rank_ - i + size_) % size_, dq_acc, out.rows(0, rows_), out.rows(rows_, rows_), dout,
                    q, cur.rows(0, rows_), cur.rows(rows_, rows_), lse);
      pending_[0] = pending_[1] = nullptr;
      sp_->wait(dkv);  // dkv_[i % 2] = what earlier visitors accumulated for this block (i > 0)
      if (i > 0) add_touched((rank_ - i + size_) % size_, acc, part_);
      dkv = sp_->exchange(acc, dkv_[(i + 1) % 2], next, prev, 1, be_.comm());
      sp_->wait(h);
    }
    sp_->wait(dkv);  // after sp steps every block's dK/dV is back with its owner
    dk_acc = dkv_[size_ % 2].rows(0, rows_), dv_acc = dkv_[size_ % 2].rows(rows_, rows_);
  }
  for (auto [out, acc] : {std::pair{dk, dk_acc}, std::pair{dv, dv_acc}}) {
    if constexpr (kF32<Act>) be_.copy(out, Tensor<const float>(acc));
    else be_.cast(out, Tensor<const float>(acc));
  }
  if constexpr (!kF32<Act>) be_.cast(dq, Tensor<const float>(dq_acc));
}

template class RingAttention<Cpu>;
#if defined(LONGCTX_CUDA)
template class RingAttention<Cuda>;
#endif

// The memory plan's probes (backend/counting.h): shapes and buffers only.
#define LONGCTX_COUNTING_RING(B)                                                                   \
  template RingAttention<Counting<B>>::RingAttention(const Counting<B>&, const Comm*, bool);       \
  template void RingAttention<Counting<B>>::configure(int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void RingAttention<Counting<B>>::take_buffers(Arena&, bool);
LONGCTX_COUNTING_RING(Cpu)
#if defined(LONGCTX_CUDA)
LONGCTX_COUNTING_RING(Cuda)
#endif

}  // namespace longctx
