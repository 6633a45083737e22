// test_attention.cpp — blockwise attention against naive softmax attention in double (a T×T
// matrix per head, fine at test sizes), the ring-step interface (offsets, merging partials over
// key blocks), the backward against a double reference and finite differences, and the ring's
// calls per step (which query and key rows each attention call of a ring step covers).
#include <algorithm>
#include <cmath>
#include <limits>

#include <omp.h>

#include "catch.h"
#include "grad_check.h"
#include "longctx/ops.h"
#include "longctx/ring_attention.h"
#include "attention_ref.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;

namespace {

// q, k, v of unit variance give attention logits of order 1: realistic, not saturated.
struct Inputs {
  std::vector<float> q, k, v;
  explicit Inputs(const cpu::AttnShape& s)
      : q(randn(s.B * s.Tq * s.NH * s.HS)), k(randn(s.B * s.Tk * s.NKV * s.HS)),
        v(randn(s.B * s.Tk * s.NKV * s.HS)) {}
};

// fp32 blockwise vs double naive: errors come from fp32 dot products (HS <= 64 terms) and the
// online-softmax rescaling, ~1e-6 relative; 2e-5 absolute on O (values of order 1) has margin.
constexpr double kAtolO = 2e-5, kRtolO = 1e-4;

}  // namespace

TEST_CASE("blockwise attention equals naive softmax attention", "[op]") {
  struct Case { int64_t B, T, NH, NKV, HS; bool causal; };
  for (Case c : {Case{1, 1, 1, 1, 8, true}, Case{2, 37, 4, 4, 16, true}, Case{1, 130, 8, 2, 32, true},
                 Case{1, 65, 8, 1, 64, true}, Case{2, 70, 4, 2, 16, false}, Case{1, 200, 2, 2, 128, true}}) {
    cpu::AttnShape s{c.B, c.T, c.T, c.NH, c.NKV, c.HS};
    s.causal = c.causal;
    Inputs in(s);
    std::vector<float> o(in.q.size(), NAN), lse(c.B * c.NH * c.T, NAN);  // poisoned: all must be written
    cpu::attention_fwd(o.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s, false);
    Naive r = naive(s, in.q, in.k, in.v, nullptr);
    INFO("B=" << c.B << " T=" << c.T << " NH=" << c.NH << " NKV=" << c.NKV << " HS=" << c.HS);
    CHECK(tol_ratio(o.data(), r.o.data(), o.size(), kAtolO, kRtolO) <= 1.0);
    CHECK(tol_ratio(lse.data(), r.lse.data(), lse.size(), kAtolO, kRtolO) <= 1.0);
  }
}

TEST_CASE("ring-step interface: partials over 2, 4 and 8 key blocks merge to full attention", "[op]") {
  const int64_t B = 1, T = 96, NH = 4, NKV = 2, HS = 16;
  cpu::AttnShape full{B, T, T, NH, NKV, HS};
  Inputs in(full);
  Naive r = naive(full, in.q, in.k, in.v, nullptr);
  for (int64_t nblk : {2, 4, 8}) {
    const int64_t Tb = T / nblk;
    // Queries of block qb (global positions qb·Tb...) against every key block, merged.
    for (int64_t qb = 0; qb < nblk; ++qb) {
      std::vector<float> qs(B * Tb * NH * HS), o(qs.size()), lse(B * NH * Tb);
      std::copy_n(in.q.begin() + qb * Tb * NH * HS, qs.size(), qs.begin());
      bool first = true;
      // Visit key blocks in a rotated (ring) order: merging is order-independent.
      for (int64_t i = 0; i < nblk; ++i) {
        const int64_t kb = (qb + i) % nblk;
        if (kb > qb) continue;  // fully masked under causality: skipped, as the ring does
        std::vector<float> ks(B * Tb * NKV * HS), vs(ks.size());
        std::copy_n(in.k.begin() + kb * Tb * NKV * HS, ks.size(), ks.begin());
        std::copy_n(in.v.begin() + kb * Tb * NKV * HS, vs.size(), vs.begin());
        cpu::AttnShape s{B, Tb, Tb, NH, NKV, HS, qb * Tb, kb * Tb, true};
        cpu::attention_fwd(o.data(), lse.data(), qs.data(), ks.data(), vs.data(), s, !first);
        first = false;
      }
      std::vector<double> ro(o.size()), rl(lse.size());
      std::copy_n(r.o.begin() + qb * Tb * NH * HS, o.size(), ro.begin());
      std::copy_n(r.lse.begin() + qb * Tb * NH, rl.size(), rl.begin());
      INFO("blocks " << nblk << " query block " << qb);
      CHECK(tol_ratio(o.data(), ro.data(), o.size(), kAtolO, kRtolO) <= 1.0);
      CHECK(tol_ratio(lse.data(), rl.data(), lse.size(), kAtolO, kRtolO) <= 1.0);
    }
  }
}

TEST_CASE("a key block entirely in the future gives lse = -inf and leaves a merge unchanged", "[op]") {
  cpu::AttnShape s{1, 8, 8, 2, 2, 8, /*q_pos0=*/0, /*k_pos0=*/8, true};
  Inputs in(s);
  std::vector<float> o(in.q.size()), lse(16);
  cpu::attention_fwd(o.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s, false);
  for (float l : lse) CHECK(l == -std::numeric_limits<float>::infinity());
  for (float x : o) CHECK(x == 0.0f);
  auto o2 = randn(o.size()), l2 = randn(lse.size());
  auto o3 = o2, l3 = l2;
  cpu::attention_fwd(o3.data(), l3.data(), in.q.data(), in.k.data(), in.v.data(), s, true);
  CHECK(o3 == o2);
  CHECK(l3 == l2);
}

TEST_CASE("attention backward equals the double reference and finite differences", "[op][grad]") {
  struct Case { int64_t B, T, NH, NKV, HS; bool causal; };
  for (Case c : {Case{1, 45, 4, 2, 16, true}, Case{2, 20, 2, 2, 8, false}, Case{1, 70, 8, 1, 32, true}}) {
    cpu::AttnShape s{c.B, c.T, c.T, c.NH, c.NKV, c.HS};
    s.causal = c.causal;
    Inputs in(s);
    auto dout = randn(in.q.size());
    std::vector<float> o(in.q.size()), lse(c.B * c.NH * c.T), delta(lse.size());
    cpu::attention_fwd(o.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s, false);
    cpu::attention_delta(delta.data(), o.data(), dout.data(), s);
    std::vector<float> dq(in.q.size(), 0.0f), dk(in.k.size(), 0.0f), dv(in.v.size(), 0.0f);
    cpu::attention_bwd(dq.data(), dk.data(), dv.data(), dout.data(), in.q.data(), in.k.data(),
                       in.v.data(), lse.data(), delta.data(), s);
    Naive r = naive(s, in.q, in.k, in.v, &dout);
    INFO("B=" << c.B << " T=" << c.T << " NH=" << c.NH << " NKV=" << c.NKV << " causal=" << c.causal);
    // Gradients sum up to T·(NH/NKV) fp32 terms of order 1: 1e-4 absolute leaves a wide margin.
    CHECK(tol_ratio(dq.data(), r.dq.data(), dq.size(), 1e-4, 1e-3) <= 1.0);
    CHECK(tol_ratio(dk.data(), r.dk.data(), dk.size(), 1e-4, 1e-3) <= 1.0);
    CHECK(tol_ratio(dv.data(), r.dv.data(), dv.size(), 1e-4, 1e-3) <= 1.0);
    auto loss = [&] {
      cpu::attention_fwd(o.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s, false);
      return dot(o, dout);
    };
    auto d = directional(loss, {in.q.data(), in.k.data(), in.v.data()},
                         {in.q.size(), in.k.size(), in.v.size()}, {dq.data(), dk.data(), dv.data()}, 1e-3);
    CHECK(d.rel_err() < 1e-2);  // see grad_check.h
  }
}

TEST_CASE("attention backward writing dK/dV equals accumulating into zeros, bit for bit", "[op]") {
  // Keys at positions 12..35 against queries 0..23: keys past 23 are seen by no query, and the
  // written dK/dV must be zero there, whatever the buffers held (filled with 7 here).
  for (const bool causal : {true, false}) {
    cpu::AttnShape s{2, 24, 24, 4, 2, 8, /*q_pos0=*/0, /*k_pos0=*/causal ? 12 : 0, causal};
    Inputs in(s);
    const auto dout = randn(in.q.size());
    std::vector<float> o(in.q.size()), lse(size_t(s.B * s.Tq * s.NH)), delta(lse.size());
    cpu::attention_fwd(o.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s, false);
    cpu::attention_delta(delta.data(), o.data(), dout.data(), s);
    std::vector<float> dq(in.q.size(), 0.0f), dk(in.k.size(), 0.0f), dv(in.v.size(), 0.0f);
    std::vector<float> dq2(dq.size(), 0.0f), dk2(dk.size(), 7.0f), dv2(dv.size(), 7.0f);
    cpu::attention_bwd(dq.data(), dk.data(), dv.data(), dout.data(), in.q.data(), in.k.data(), in.v.data(),
                       lse.data(), delta.data(), s);
    cpu::attention_bwd(dq2.data(), dk2.data(), dv2.data(), dout.data(), in.q.data(), in.k.data(), in.v.data(),
                       lse.data(), delta.data(), s, /*accumulate_dkv=*/false);
    INFO((causal ? "causal, keys from position 12" : "full"));
    CHECK(dq2 == dq);
    CHECK(dk2 == dk);
    CHECK(dv2 == dv);
    if (!causal) continue;
    // Seen keys got gradients; the 12 unseen keys of each sequence got zeros, not the fill.
    int64_t seen_nonzero = 0, unseen = 0, unseen_zero = 0;
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t j = 0; j < s.Tk; ++j)
        for (int64_t x = 0; x < s.NKV * s.HS; ++x) {
          const size_t at = size_t((b * s.Tk + j) * s.NKV * s.HS + x);
          if (s.k_pos0 + j > s.q_pos0 + s.Tq - 1) unseen += 1, unseen_zero += dk2[at] == 0.0f && dv2[at] == 0.0f;
          else seen_nonzero += dk2[at] != 0.0f;
        }
    CHECK(unseen == s.B * 12 * s.NKV * s.HS);
    CHECK(unseen_zero == unseen);
    CHECK(seen_nonzero > 0);
  }
}

TEST_CASE("attention forward and backward are bitwise the same on 1, 2 and 3 threads", "[op]") {
  // Each output element is summed by one thread in a fixed order, so the thread count (run.threads,
  // ranks per node) must not change a bit: resume relies on it.
  cpu::AttnShape s{3, 70, 70, 6, 2, 8};
  const size_t nq = size_t(s.B * s.Tq * s.NH * s.HS), nk = size_t(s.B * s.Tk * s.NKV * s.HS);
  const auto q = randn(nq), k = randn(nk), v = randn(nk), dout = randn(nq);
  struct Out {
    std::vector<float> o, lse, dq, dk, dv;
  };
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Out r{std::vector<float>(nq), std::vector<float>(size_t(s.B * s.Tq * s.NH)), std::vector<float>(nq, 0.5f),
          std::vector<float>(nk, 0.25f), std::vector<float>(nk, -0.5f)};  // the gradients accumulate
    std::vector<float> delta(r.lse.size());
    cpu::attention_fwd(r.o.data(), r.lse.data(), q.data(), k.data(), v.data(), s, false);
    cpu::attention_delta(delta.data(), r.o.data(), dout.data(), s);
    cpu::attention_bwd(r.dq.data(), r.dk.data(), r.dv.data(), dout.data(), q.data(), k.data(), v.data(),
                       r.lse.data(), delta.data(), s);
    return r;
  };
  const int before = omp_get_max_threads();
  const Out one = run(1);
  for (int threads : {2, 3}) {
    const Out r = run(threads);
    INFO(threads << " threads");
    CHECK(r.o == one.o);
    CHECK(r.lse == one.lse);
    CHECK(r.dq == one.dq);
    CHECK(r.dk == one.dk);
    CHECK(r.dv == one.dv);
  }
  omp_set_num_threads(before);
}

TEST_CASE("a ring step's calls cover every visible query-key pair once, zigzag steps after the first in one call",
          "[op]") {
  // Small layouts, every (query row, key row) pair of every (rank, owner) checked by position.
  for (const bool zigzag : {true, false})
    for (const int sp : {1, 2, 3, 4, 8}) {
      const int64_t T = 16 * sp;
      for (int r = 0; r < sp; ++r)
        for (int o = 0; o < sp; ++o) {
          INFO((zigzag ? "zigzag" : "contiguous") << " sp " << sp << ": rank " << r << ", owner " << o);
          const SeqLayout q = seq_layout(T, r, sp, zigzag), k = seq_layout(T, o, sp, zigzag);
          const std::vector<RingCall> calls = ring_calls(q, k, 4, 2, 8);
          const std::vector<int64_t> qp = q.positions(), kp = k.positions();
          std::vector<int> covered(size_t(q.T_loc * k.T_loc), 0);
          std::vector<char> key_done(size_t(k.T_loc), 0);  // key rows an earlier call touched
          for (const RingCall& c : calls) {
            int done = 0;  // dkv_add: all of the call's key rows touched before, or none
            for (int64_t j = c.k0; j < c.k0 + c.kn; ++j) done += key_done[size_t(j)];
            CHECK((done == 0 || done == c.kn));
            CHECK(c.dkv_add == (done > 0));
            for (int64_t j = c.k0; j < c.k0 + c.kn; ++j) key_done[size_t(j)] = 1;
            CHECK((c.shape.Tq == c.qn && c.shape.Tk == c.kn && c.shape.B == 1 && c.shape.NH == 4));
            REQUIRE((c.q0 >= 0 && c.qn > 0 && c.q0 + c.qn <= q.T_loc));  // inside the local rows
            REQUIRE((c.k0 >= 0 && c.kn > 0 && c.k0 + c.kn <= k.T_loc));
            for (int64_t i = c.q0; i < c.q0 + c.qn; ++i)
              for (int64_t j = c.k0; j < c.k0 + c.kn; ++j) {
                // What the call computes for this pair: by the shape's positions when causal.
                const bool sees = !c.shape.causal || c.shape.k_pos0 + (j - c.k0) <= c.shape.q_pos0 + (i - c.q0);
                if (sees) covered[size_t(i * k.T_loc + j)] += 1;
                if (c.shape.causal) {  // the positions the call is given are the rows' global ones
                  CHECK(c.shape.q_pos0 + (i - c.q0) == qp[size_t(i)]);
                  CHECK(c.shape.k_pos0 + (j - c.k0) == kp[size_t(j)]);
                }
              }
          }
          int wrong = 0;
          for (int64_t i = 0; i < q.T_loc; ++i)
            for (int64_t j = 0; j < k.T_loc; ++j)
              wrong += covered[size_t(i * k.T_loc + j)] != (kp[size_t(j)] <= qp[size_t(i)] ? 1 : 0);
          CHECK(wrong == 0);
          if (zigzag && sp > 1) CHECK(calls.size() == (r == o ? 3u : 1u));  // own block: 2 causal + 1 full
          // touched_keys: exactly the key rows some call touched, as sorted disjoint ranges.
          std::vector<char> in_range(size_t(k.T_loc), 0);
          int64_t last_end = -1;
          for (const KeyRange& kr : touched_keys(calls)) {
            CHECK(kr.k0 > last_end);  // sorted, and adjacent ranges joined
            last_end = kr.k0 + kr.kn;
            for (int64_t j = kr.k0; j < kr.k0 + kr.kn; ++j) in_range[size_t(j)] = 1;
          }
          CHECK(in_range == key_done);
          if (r == o) CHECK(std::count(key_done.begin(), key_done.end(), 1) == k.T_loc);  // own block: all
        }
    }
}
