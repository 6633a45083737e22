// test_ops_gpu.cpp — the small CUDA ops (backend/cuda_ops.h) against the CPU fp32 reference ops
// (ops.h, longctx::cpu) on fresh random inputs, rounded to bf16 on the host first so both sides see
// the same values. Outputs start poisoned (NaN bytes): an unwritten element fails. Tolerances
// |x − ref| <= atol + rtol·|ref| with ref rounded to the output dtype; each says where it comes
// from. Tagged [gpu] (tests/main.cpp leaves them out where no GPU is usable); the launchers'
// refusals need no GPU and run everywhere CUDA is built ([op]).
#include "catch.h"

#if defined(LONGCTX_CUDA)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "gpu_util.h"
#include "longctx/backend/cuda_ops.h"
#include "longctx/flash.h"
#include "longctx/ops.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;


TEST_CASE("GPU casts round to nearest even, bf16 to fp32 exactly", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  // 3000001 > 4096 blocks × 256 threads: the grid-stride loop runs several rounds.
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(3000001)}) {
    INFO("n = " << n);
    std::vector<float> x = randn(sz(n), 3.0f);
    for (size_t i = 0; i < x.size(); i += 7) {  // exact ties (low 16 bits 0x8000): even must win
      uint32_t u;
      std::memcpy(&u, &x[i], 4);
      u = (u & 0xffff0000u) | 0x8000u;
      std::memcpy(&x[i], &u, 4);
    }
    Dev<float> dx(x);
    Dev<uint16_t> b(sz(n));
    gpu::cast_f32_to_bf16(b.p, dx.p, n);
    CHECK(b.get() == bits(x));  // round to nearest even is exact: the same bits as the host's
    Dev<float> back(sz(n));
    gpu::cast_bf16_to_f32(back.p, b.p, n);
    CHECK(same_bits(back.get(), round_bf16(x)));
  }
}

TEST_CASE("GPU fill, add (bf16, fp32) and scale equal the CPU's to the bit", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  for (int64_t n : {int64_t(1), int64_t(4099), int64_t(3000001)}) {
    INFO("n = " << n);
    Dev<float> f(sz(n));
    gpu::fill_f32(f.p, 0.37f, n);
    CHECK(f.get() == std::vector<float>(sz(n), 0.37f));
    Dev<uint16_t> h(sz(n));
    gpu::fill_bf16(h.p, 0.37f, n);
    CHECK(h.get() == std::vector<uint16_t>(sz(n), to_bits(0.37f)));
    // add: one fp32 addition of two bf16 values, rounded once: the host does the same operations.
    Bf16 a(sz(n), 1.0f), b(sz(n), 2.0f);
    std::vector<float> ref(sz(n));
    cpu::add(ref.data(), a.f.data(), b.f.data(), n);
    Dev<uint16_t> out(sz(n));
    gpu::add_bf16(out.p, a.d.p, b.d.p, n);
    CHECK(out.get() == bits(ref));
    gpu::add_bf16(a.d.p, a.d.p, b.d.p, n);  // in place (out aliases a)
    CHECK(a.d.get() == bits(ref));
    std::vector<float> x = randn(sz(n)), xr = x;
    Dev<float> dx(x);
    gpu::scale_f32(dx.p, -0.731f, n);
    cpu::scale(xr.data(), -0.731f, n);
    CHECK(same_bits(dx.get(), xr));  // one fp32 multiplication each
    // fp32 add (the ring's dK/dV sums): one addition each, in place too.
    std::vector<float> y = randn(sz(n)), sum(sz(n));
    cpu::add(sum.data(), xr.data(), y.data(), n);
    Dev<float> dy(y), dsum(sz(n));
    gpu::add_f32(dsum.p, dx.p, dy.p, n);
    CHECK(same_bits(dsum.get(), sum));
    gpu::add_f32(dy.p, dx.p, dy.p, n);  // out aliases b
    CHECK(same_bits(dy.get(), sum));
  }
}

TEST_CASE("GPU sum_squares matches the CPU's double sum and repeats to the bit", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  Dev<char> ws(gpu::sum_squares_workspace_bytes());
  for (int64_t n : {int64_t(1), int64_t(12345), int64_t(3000001)}) {
    INFO("n = " << n);
    const std::vector<float> x = randn(sz(n), 0.5f);
    Dev<float> dx(x);
    Dev<double> out(1), out2(1);
    const float s = n == 12345 ? 1.0f / 777.0f : 1.0f;  // the gradient's 1/targets factor, as the engine passes it
    gpu::sum_squares(out.p, dx.p, n, s, ws.p, ws.n);
    gpu::sum_squares(out2.p, dx.p, n, s, ws.p, ws.n);
    const double ref = cpu::sum_squares(x.data(), n, s), got = out.get()[0];
    // Squares of fp32 are exact in double; the two sums differ only by double roundings, at most
    // n·2^-53 relative for positive terms (3.3e-10 at n = 3M, a worst case; random roundings give
    // ~sqrt(n)·2^-53 = 2e-13): 1e-12.
    CHECK(std::fabs(got - ref) <= 1e-12 * ref + 1e-300);
    CHECK(std::memcmp(&got, &out2.get()[0], sizeof(double)) == 0);  // the same bits again
    // The factor folded in gives the bits of the separate passes it replaces: scale, then sum.
    Dev<float> xs(x);
    Dev<double> out3(1);
    gpu::scale_f32(xs.p, s, n);
    gpu::sum_squares(out3.p, xs.p, n, 1.0f, ws.p, ws.n);
    CHECK(std::memcmp(&got, &out3.get()[0], sizeof(double)) == 0);
  }
  Dev<double> zero(1);
  gpu::sum_squares(zero.p, nullptr, 0, 1.0f, ws.p, ws.n);
  CHECK(zero.get()[0] == 0.0);
}

TEST_CASE("GPU embedding forward copies rows; backward equals the CPU's to the bit", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  struct Case {
    int64_t N, C, v0, V, Vtot;
    bool skewed;  // half the tokens are one token: long runs across the backward's blocks
  };
  for (Case c : {Case{1, 1, 0, 1, 1, false}, Case{1000, 67, 16, 20, 50, false}, Case{777, 130, 0, 40, 40, true},
                 Case{5000, 256, 0, 32000, 32000, false}, Case{4096, 96, 30000, 2000, 128256, true}}) {
    INFO("N=" << c.N << " C=" << c.C << " v0=" << c.v0 << " V=" << c.V << " skewed=" << c.skewed);
    auto gen = rng();
    std::uniform_int_distribution<int32_t> pick(0, int32_t(c.Vtot - 1));
    std::vector<int32_t> tok(sz(c.N));
    const int32_t frequent = int32_t(c.v0 + c.V / 2);
    for (auto& t : tok) t = c.skewed && (gen() & 1) ? frequent : pick(gen);
    Dev<int32_t> dtok(tok);
    Bf16 table(sz(c.V * c.C), 1.0f);
    Dev<uint16_t> out(sz(c.N * c.C));
    gpu::embedding_fwd(out.p, dtok.p, table.d.p, c.N, c.C, c.v0, c.V);
    std::vector<float> ref(sz(c.N * c.C));
    cpu::embedding_fwd(ref.data(), tok.data(), table.f.data(), c.N, c.C, c.v0, c.V);
    CHECK(out.get() == bits(ref));  // a copy (or zeros): exact

    Bf16 dout(sz(c.N * c.C), 1.0f);
    std::vector<float> dt = randn(sz(c.V * c.C), 0.1f), dt_ref = dt;  // += onto existing values
    cpu::embedding_bwd(dt_ref.data(), dout.f.data(), tok.data(), c.N, c.C, c.v0, c.V);
    Dev<char> ws(gpu::embedding_bwd_workspace_bytes(c.N, c.V));
    for (int rep = 0; rep < 2; ++rep) {  // twice: the same bits each time
      Dev<float> ddt(dt);
      gpu::embedding_bwd(ddt.p, dout.d.p, dtok.p, c.N, c.C, c.v0, c.V, ws.p, ws.n);
      // The same fp32 additions in the same order (increasing n per row) as the CPU: exact.
      CHECK(same_bits(ddt.get(), dt_ref));
    }
  }
}

TEST_CASE("GPU rmsnorm forward matches the CPU", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  for (auto [N, C] : Sizes{{1, 1}, {37, 64}, {53, 1000}, {300, 4096}, {5, 8192}}) {
    INFO("N=" << N << " C=" << C);
    Bf16 in(sz(N * C), 1.5f), w(randn(sz(C), 0.2f));
    for (float& x : w.f) x = round_bf16(1.0f + x);  // norm weights near 1
    w.d.put(bits(w.f));
    Dev<uint16_t> out(sz(N * C));
    Dev<float> rstd(sz(N));
    gpu::rmsnorm_fwd(out.p, rstd.p, in.d.p, w.d.p, N, C, 1e-5f);
    std::vector<float> ref(sz(N * C)), rref(sz(N));
    cpu::rmsnorm_fwd(ref.data(), rref.data(), in.f.data(), w.f.data(), N, C, 1e-5f);
    // rstd: the GPU's fp32 sum of C positive squares (C/256 in a row per thread, then an 8-level
    // tree) is within (C/256 + 8)·u relative of the CPU's double one, rstd within half of that plus
    // one fp32 rounding (1.2e-6 at C = 8192): 1e-5 leaves a margin of 8.
    expect_close(rstd.get(), rref, const_tol(0), 1e-5, "rstd");
    // out: the same fp32 products from an rstd a few ulps apart round to the same or a neighbouring
    // bf16 value: kBf16Ulp (its 2^-14 margin also covers the <= 2e-6 relative rstd difference).
    expect_close(floats(out.get()), round_bf16(ref), const_tol(1e-30), kBf16Ulp + 0x1p-20, "out");
  }
}

TEST_CASE("GPU rmsnorm backward matches the CPU; dw repeats to the bit", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  for (auto [N, C] : Sizes{{1, 1}, {37, 64}, {1000, 1000}, {5000, 256}, {64, 4096}}) {
    INFO("N=" << N << " C=" << C);
    Bf16 in(sz(N * C), 1.5f), dout(sz(N * C), 1.0f), w(randn(sz(C), 0.2f));
    for (float& x : w.f) x = round_bf16(1.0f + x);
    w.d.put(bits(w.f));
    std::vector<float> scratch(sz(N * C)), rstd(sz(N));
    cpu::rmsnorm_fwd(scratch.data(), rstd.data(), in.f.data(), w.f.data(), N, C, 1e-5f);
    Dev<float> drstd(rstd);  // both sides read the same rstd
    const std::vector<float> din0 = randn(sz(N * C)), dw0 = randn(sz(C), 3.0f);
    std::vector<float> g(sz(N * C), 0.0f), din_ref = din0, dw_ref = dw0, dw_none = dw0;
    cpu::rmsnorm_bwd(g.data(), dw_none.data(), dout.f.data(), in.f.data(), w.f.data(), rstd.data(), N, C);
    cpu::rmsnorm_bwd(din_ref.data(), dw_ref.data(), dout.f.data(), in.f.data(), w.f.data(), rstd.data(), N, C);
    // Bounds of the fp32 differences, from the terms (double, on the host):
    //   g = a − x·k, a = dy·w·r, k = r³·dot/C. The GPU's fp32 dot (C/256 per thread, then a tree)
    //   and the CPU's double dot differ by <= (C/256 + 16)·u·Σ|dy·w·x|; a few roundings of a and
    //   x·k add 4u·(|a| + |x·k|). dw: two fp32 sums over N rows in different orders differ by
    //   <= 2(N + 2)·u·Σ_n|dy·x·r| (recursive summation's bound), plus a rounding of dw0.
    std::vector<double> gtol(sz(N * C)), dwtol(sz(C));
    for (int64_t n = 0; n < N; ++n) {
      double sabs = 0, dot = 0;
      const double r = rstd[n];
      for (int64_t c = 0; c < C; ++c) {
        const double t = double(dout.f[n * C + c]) * w.f[c] * in.f[n * C + c];
        sabs += std::fabs(t), dot += t;
      }
      const double kerr = r * r * r / double(C) * (double(C) / 256 + 16) * kU * sabs, k = r * r * r * dot / C;
      for (int64_t c = 0; c < C; ++c) {
        const double x = in.f[n * C + c], a = double(dout.f[n * C + c]) * w.f[c] * r;
        gtol[n * C + c] = std::fabs(x) * kerr + 4 * kU * (std::fabs(a) + std::fabs(x * k));
        dwtol[c] += std::fabs(double(dout.f[n * C + c]) * x * r);
      }
    }
    for (int64_t c = 0; c < C; ++c) dwtol[c] = 2.0 * double(N + 2) * kU * dwtol[c] + 2 * kU * std::fabs(dw0[c]);
    Dev<char> ws(gpu::rmsnorm_bwd_workspace_bytes(N, C));

    // din written (=) in bf16, din32 += in fp32, dw += in fp32.
    Dev<uint16_t> din(sz(N * C));
    Dev<float> din32(din0), dw(dw0);
    gpu::rmsnorm_bwd(din.p, din32.p, dw.p, dout.d.p, in.d.p, w.d.p, drstd.p, N, C, false, ws.p, ws.n);
    // bf16 outputs: the fp32 bound, then one bf16 ulp of the rounded reference.
    expect_close(floats(din.get()), round_bf16(g), [&](size_t i) { return kSlack * gtol[i]; }, kBf16Ulp, "din (=)");
    expect_close(din32.get(), din_ref, [&](size_t i) { return gtol[i] + 2 * kU * std::fabs(din0[i]); }, 0,
                 "din32 (+=)");
    const std::vector<float> dw1 = dw.get();
    expect_close(dw1, dw_ref, [&](size_t i) { return dwtol[i]; }, 0, "dw (+=)");

    // din accumulated in bf16 (din = bf16(din + g)); dw again from dw0: the same bits.
    Bf16 dacc(din0);
    dw.put(dw0);
    gpu::rmsnorm_bwd(dacc.d.p, nullptr, dw.p, dout.d.p, in.d.p, w.d.p, drstd.p, N, C, true, ws.p, ws.n);
    std::vector<float> acc_ref(sz(N * C));
    for (size_t i = 0; i < acc_ref.size(); ++i) acc_ref[i] = round_bf16(dacc.f[i] + g[i]);
    expect_close(floats(dacc.d.get()), acc_ref, [&](size_t i) { return kSlack * gtol[i]; }, kBf16Ulp,
                 "din (+= bf16)");
    CHECK(same_bits(dw.get(), dw1));  // fixed reduction order: deterministic
  }
}

TEST_CASE("GPU rope_apply matches the CPU, forward and back", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  struct Case {
    int64_t B, T, H, HS, pos0;
  };
  for (Case c : {Case{1, 1, 1, 2, 0}, Case{2, 37, 3, 64, 5000}, Case{1, 129, 8, 128, 1000000}}) {
    INFO("B=" << c.B << " T=" << c.T << " H=" << c.H << " HS=" << c.HS << " pos0=" << c.pos0);
    const int64_t n = c.B * c.T * c.H * c.HS;
    std::vector<int64_t> pos(sz(c.T));
    for (int64_t t = 0; t < c.T; ++t) pos[t] = c.pos0 + t;
    std::vector<float> cs(sz(c.T * c.HS / 2)), sn(cs.size());
    cpu::rope_table(cs.data(), sn.data(), pos.data(), c.T, c.HS, 5e5);
    Dev<float> dcs(cs), dsn(sn);
    for (int sign : {1, -1}) {
      INFO("sign " << sign);
      Bf16 x(sz(n), 1.0f);
      std::vector<float> ref = x.f;
      cpu::rope_apply(ref.data(), cs.data(), sn.data(), c.B, c.T, c.H, c.HS, sign);
      gpu::rope_apply(x.d.p, dcs.p, dsn.p, c.B, c.T, c.H, c.HS, sign);
      // The kernel repeats the CPU's fp32 operations without fused multiply-adds, so the values
      // before rounding agree (exactly, expected); allowed: one bf16 ulp of the rounded reference.
      expect_close(floats(x.d.get()), round_bf16(ref), const_tol(1e-30), kBf16Ulp, "x");
    }
  }
}

TEST_CASE("GPU swiglu forward and backward match the CPU", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  for (int64_t n : {int64_t(1), int64_t(100003), int64_t(3000001)}) {
    INFO("n = " << n);
    Bf16 gate(sz(n), 2.0f), up(sz(n), 1.0f), dout(sz(n), 1.0f);
    std::vector<float> out_ref(sz(n)), dg_ref(sz(n)), du_ref(sz(n));
    cpu::swiglu_fwd(out_ref.data(), gate.f.data(), up.f.data(), n);
    cpu::swiglu_bwd(dg_ref.data(), du_ref.data(), dout.f.data(), gate.f.data(), up.f.data(), n);
    Dev<uint16_t> out(sz(n)), dg(sz(n)), du(sz(n));
    gpu::swiglu_fwd(out.p, gate.d.p, up.d.p, n);
    gpu::swiglu_bwd(dg.p, du.p, dout.d.p, gate.d.p, up.d.p, n);
    // CUDA's expf (<= 2 ulp) and the host's exp (<= 1 ulp) differ by <= 3u relative, so sigmoid by
    // <= 5u and silu·up by <= 7u: the fp32 values agree to 2^-20 (16u) relative, then the rounding.
    expect_close(floats(out.get()), round_bf16(out_ref), const_tol(1e-30), kBf16Ulp + 0x1p-20, "out");
    expect_close(floats(du.get()), round_bf16(du_ref), const_tol(1e-30), kBf16Ulp + 0x1p-20, "dup");
    // dgate's factor 1 + g(1 − σ) cancels near g = −1.28: its absolute error is <= (2 + |g|)·8u, so
    // dgate's is <= |dout·up·σ|·(2 + |g|)·8u (σ <= 1), plus one bf16 ulp.
    expect_close(floats(dg.get()), round_bf16(dg_ref),
                 [&](size_t i) { return kSlack * std::fabs(dout.f[i] * up.f[i]) * (2 + std::fabs(gate.f[i])) * 8 * kU; },
                 kBf16Ulp + 0x1p-20, "dgate");
    const std::vector<uint16_t> dg1 = dg.get(), du1 = du.get();
    gpu::swiglu_bwd(gate.d.p, up.d.p, dout.d.p, gate.d.p, up.d.p, n);  // in place over gate, up
    CHECK(gate.d.get() == dg1);
    CHECK(up.d.get() == du1);
  }
}

TEST_CASE("GPU cross-entropy pieces match the CPU", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  struct Case {
    int64_t rows, V, v0, Vtot;
  };
  for (Case c : {Case{1, 1, 0, 1}, Case{29, 5000, 3000, 10000}, Case{7, 32064, 0, 32064}, Case{3, 100, 0, 128256}}) {
    INFO("rows=" << c.rows << " V=" << c.V << " v0=" << c.v0 << " Vtot=" << c.Vtot);
    const std::vector<float> z = randn(sz(c.rows * c.V), 3.0f);
    auto gen = rng();
    std::vector<int32_t> target(sz(c.rows));
    for (int64_t r = 0; r < c.rows; ++r) {  // -1, in the slice, or anywhere in the vocabulary
      const uint64_t k = gen() % 3;
      target[r] = k == 0 ? -1 : k == 1 ? int32_t(c.v0 + int64_t(gen() % c.V)) : int32_t(gen() % c.Vtot);
    }
    if (c.rows > 1) target[0] = -1, target[1] = int32_t(c.v0);  // at least one of each kind
    Dev<float> dz(z), mx(sz(c.rows));
    Dev<int32_t> dt(target);
    Dev<double> sum(sz(c.rows)), zt(sz(c.rows));
    std::vector<float> mref(sz(c.rows));
    std::vector<double> sref(sz(c.rows)), ztref(sz(c.rows));
    cpu::xent_row_max(z.data(), c.rows, c.V, mref.data());
    cpu::xent_row_sum(z.data(), c.rows, c.V, mref.data(), target.data(), c.v0, sref.data(), ztref.data());
    gpu::xent_row_max(dz.p, c.rows, c.V, mx.p);
    CHECK(same_bits(mx.get(), mref));  // a maximum is exact
    gpu::xent_row_sum(dz.p, c.rows, c.V, mx.p, dt.p, c.v0, sum.p, zt.p);
    const std::vector<double> sg = sum.get(), ztg = zt.get();
    for (int64_t r = 0; r < c.rows; ++r) {
      INFO("row " << r << " target " << target[r]);
      // Positive terms, each expf within 2 ulp (2^-22 relative) of exp in double, then summed in
      // double: the sums agree to 2^-22 relative; 1e-6 leaves a margin of 4.
      CHECK(std::fabs(sg[r] - sref[r]) <= 1e-6 * sref[r]);
      CHECK(ztg[r] == ztref[r]);  // a copied logit (or 0)
    }
    // grad from the same (CPU) statistics on both sides.
    const float scale = 1.0f / 29.0f;
    Dev<double> dsum(sref);
    mx.put(mref);
    std::vector<float> gref = z;
    cpu::xent_grad(gref.data(), c.rows, c.V, mref.data(), sref.data(), target.data(), c.v0, scale);
    Dev<uint16_t> db(sz(c.rows * c.V));
    gpu::xent_grad_bf16(db.p, dz.p, c.rows, c.V, mx.p, dsum.p, dt.p, c.v0, scale);  // before z is overwritten
    CHECK(same_bits(dz.get(), z));  // xent_grad_bf16 leaves z as it was
    gpu::xent_grad(dz.p, c.rows, c.V, mx.p, dsum.p, dt.p, c.v0, scale);
    CHECK(db.get() == bits(dz.get()));  // the one-pass bf16 gradient: the in-place one, rounded
    // exp(z − mx)·k <= scale: the exponential's 2 ulp give <= 2^-21·scale absolute, the target's
    // subtraction one more rounding of scale: atol 2^-20·scale. Rows without a target are exactly 0.
    expect_close(dz.get(), gref, const_tol(0x1p-20 * scale), 0, "dz");
  }
}

TEST_CASE("GPU adamw_update equals the CPU's to the bit", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  for (int64_t t : {int64_t(1), int64_t(7), int64_t(1000)}) {
    INFO("t = " << t);
    const int64_t n = 100003;
    std::vector<float> p = randn(sz(n)), g = randn(sz(n), 1e-2f), m = randn(sz(n), 1e-3f);
    std::vector<float> v = randn(sz(n), 1e-2f);
    for (float& x : v) x = x * x;  // second moments are >= 0
    Dev<float> dp(p), dg(g), dm(m), dv(v);
    Dev<uint16_t> pb(sz(n));
    const float wd = t == 7 ? 0.0f : 0.1f;
    // The gradient's factors as the engine passes them (1/targets; a clip factor or 1).
    const float mean = t == 1 ? 1.0f : 1.0f / 8191.0f, clip = t == 1000 ? 0.43f : 1.0f;
    cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 3e-4f, 0.9f, 0.95f, 1e-8f, wd, t, mean, clip);
    gpu::adamw_update(dp.p, pb.p, dg.p, dm.p, dv.p, n, 3e-4f, 0.9f, 0.95f, 1e-8f, wd, t, mean, clip);
    // The kernel performs the CPU's fp32 operations in its order, each rounded to nearest (no fused
    // multiply-adds; IEEE division and sqrt; inputs far from subnormals): the same bits.
    CHECK(same_bits(dm.get(), m));
    CHECK(same_bits(dv.get(), v));
    CHECK(same_bits(dp.get(), p));
    CHECK(pb.get() == bits(p));
  }
}

TEST_CASE("GPU xent_rows gives the CPU's row losses, top-1 flags and their sum", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  for (int64_t rows : {int64_t(1), int64_t(777), int64_t(70001)}) {  // 70001 > 256 blocks × 256 threads
    INFO("rows " << rows);
    std::vector<float> mx = randn(sz(rows), 3.0f);
    std::vector<double> sum(sz(rows)), zt(sz(rows));
    std::vector<int32_t> tgt(sz(rows));
    const std::vector<float> u = randn(sz(rows));
    for (int64_t r = 0; r < rows; ++r) {
      sum[sz(r)] = 1.0 + 50.0 * std::fabs(double(u[sz(r)]));
      // Every third row's target logit is the row maximum (top-1), every seventh row has no target.
      zt[sz(r)] = r % 3 == 0 ? double(mx[sz(r)]) : double(mx[sz(r)]) - 0.25 - std::fabs(double(u[sz(r)]));
      tgt[sz(r)] = r % 7 == 0 ? -1 : int32_t(r % 264);
    }
    std::vector<float> loss_ref(sz(rows));
    std::vector<uint8_t> top_ref(sz(rows));
    double sum_ref = 0.5;  // accumulates onto what is there, as over chunks
    int64_t count_ref = 3;
    cpu::xent_rows(mx.data(), sum.data(), zt.data(), tgt.data(), rows, loss_ref.data(), top_ref.data(), &sum_ref,
                   &count_ref);
    Dev<float> dmx(mx), dloss(sz(rows));
    Dev<double> dsum(sum), dzt(zt), acc(std::vector<double>{0.5, 3.0});
    Dev<int32_t> dtgt(tgt);
    Dev<uint8_t> dtop(sz(rows));
    Dev<unsigned char> ws(gpu::xent_rows_workspace_bytes());
    gpu::xent_rows(dmx.p, dsum.p, dzt.p, dtgt.p, rows, dloss.p, dtop.p, acc.p, ws.p, ws.n);
    // Both sides compute l in double from the same inputs; log differs by at most an ulp or so
    // between libm and CUDA, far below fp32's rounding of l: the fp32 losses allow 1 fp32 ulp.
    expect_close(dloss.get(), loss_ref, const_tol(0.0), 0x1p-23, "row loss");
    CHECK(dtop.get() == top_ref);
    const std::vector<double> a = acc.get();
    // Sums of up to 7e4 positive terms of order 10 in another order: relative 1e-12 (n·2^-53 ≈ 8e-12
    // is the worst case; typical far less).
    CHECK(a[0] == Approx(sum_ref).epsilon(1e-11));
    CHECK(int64_t(a[1]) == count_ref);
  }
}

TEST_CASE("GPU op launchers refuse bad arguments before launching", "[op]") {
  // These checks run on the host before any CUDA call: no GPU needed.
  CHECK(error_of([] { gpu::rope_apply(nullptr, nullptr, nullptr, 1, 1, 1, 64, 2); }) != "");
  CHECK(error_of([] { gpu::rope_apply(nullptr, nullptr, nullptr, 1, 1, 1, 63, 1); }) != "");
  CHECK(error_of([] { gpu::rmsnorm_fwd(nullptr, nullptr, nullptr, nullptr, 0, 64, 1e-5f); }) != "");
  CHECK(error_of([] { gpu::xent_row_max(nullptr, int64_t(1) << 31, 10, nullptr); }) != "");
  CHECK(error_of([] { gpu::sum_squares(nullptr, nullptr, 10, 1.0f, nullptr, 0); }) != "");
  CHECK(error_of([] { gpu::adamw_update(nullptr, nullptr, nullptr, nullptr, nullptr, 10, 1, 0.9f, 0.95f, 1e-8f, 0, 0); })
            != "");
  CHECK(error_of([] { gpu::embedding_bwd_workspace_bytes(int64_t(1) << 31, 10); }) != "");
  const std::string e = error_of([] { gpu::rope_apply(nullptr, nullptr, nullptr, 1, 1, 1, 64, 0); });
  CHECK_THAT(e, Catch::Matchers::Contains("rope_apply"));
}

TEST_CASE("the memory plan's embedding-backward bound covers cub's real workspace", "[gpu][kernels]") {
  // Cuda::op_scratch_bytes reserves embedding_bwd_workspace_bound (no device needed, so that
  // `longctx plan` counts the GPU on a login node); embedding_bwd asks cub for the real size.
  for (const int64_t V : {int64_t(264), int64_t(32000), int64_t(128256)})
    for (int64_t N = 1; N <= (int64_t(1) << 28); N *= 3) {
      const size_t real = gpu::embedding_bwd_workspace_bytes(N, V), bound = gpu::embedding_bwd_workspace_bound(N, V);
      INFO("N " << N << " V " << V << ": cub needs " << real << " bytes, the plan reserves " << bound);
      CHECK(bound >= real);
      // And not wildly more once cub's per-item buffers dominate (below that cub sorts in one tile
      // with almost no workspace, while the bound still counts 12·N): past the bound's fixed 8 MiB
      // (cub's spine), its 28·N bytes against the real 16·N + cub's 8·N and tiles: within 1.5×.
      if (N >= 65536) CHECK(bound - (size_t(8) << 20) <= real + real / 2);
    }
}

#endif  // LONGCTX_CUDA
