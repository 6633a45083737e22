// test_ops.cpp — each CPU op against a plain double-precision formula on fresh random inputs, and
// each backward against finite differences.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "catch.h"
#include "grad_check.h"
#include "longctx/lm_head.h"
#include "longctx/ops.h"
#include "longctx/optim.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;

// fp32 sums of K products have relative error ~K·2^-24 in the worst case, ~sqrt(K)·2^-24 typically;
// the shapes here have K <= 256, so 1e-5 relative (+1e-6 absolute near zero) has a wide margin.
static constexpr double kAtol = 1e-5, kRtol = 1e-4;

TEST_CASE("linear forward matches a double matmul; backward matches finite differences", "[op][grad]") {
  const int64_t N = 37, I = 48, O = 29;
  auto x = randn(N * I), W = randn(O * I);
  std::vector<float> y(N * O);
  cpu::linear_fwd(y.data(), x.data(), W.data(), N, I, O);
  std::vector<double> ref(N * O, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < I; ++i) ref[n * O + o] += double(x[n * I + i]) * W[o * I + i];
  CHECK(tol_ratio(y.data(), ref.data(), y.size(), kAtol, kRtol) <= 1.0);

  auto R = randn(N * O);  // loss = <y, R>
  std::vector<float> dx(N * I), dW(O * I, 0.0f);
  cpu::linear_bwd(dx.data(), dW.data(), R.data(), x.data(), W.data(), N, I, O, false);
  auto loss = [&] {
    cpu::linear_fwd(y.data(), x.data(), W.data(), N, I, O);
    return dot(y, R);
  };
  // Linear in each argument: central differences are exact up to rounding.
  auto c = directional(loss, {x.data(), W.data()}, {x.size(), W.size()}, {dx.data(), dW.data()}, 1e-2);
  CHECK(c.rel_err() < 1e-3);
  // Accumulation: a second backward with accumulate adds the same amount again.
  std::vector<float> dx2 = dx;
  cpu::linear_bwd(dx2.data(), nullptr, R.data(), x.data(), W.data(), N, I, O, true);
  for (size_t i = 0; i < dx.size(); ++i) REQUIRE(dx2[i] == Approx(2 * dx[i]).margin(1e-5));
}

TEST_CASE("rmsnorm forward and backward", "[op][grad]") {
  const int64_t N = 23, C = 64;
  const float eps = 1e-5f;
  auto x = randn(N * C, 2.0f), w = randn(C);
  std::vector<float> y(N * C), rstd(N);
  cpu::rmsnorm_fwd(y.data(), rstd.data(), x.data(), w.data(), N, C, eps);
  std::vector<double> ref(N * C);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += double(x[n * C + c]) * x[n * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    for (int64_t c = 0; c < C; ++c) ref[n * C + c] = x[n * C + c] * r * w[c];
  }
  CHECK(tol_ratio(y.data(), ref.data(), y.size(), kAtol, kRtol) <= 1.0);

  auto R = randn(N * C);
  std::vector<float> dx(N * C, 0.0f), dw(C, 0.0f);
  cpu::rmsnorm_bwd(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  auto loss = [&] {
    cpu::rmsnorm_fwd(y.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    return dot(y, R);
  };
  for (int rep = 0; rep < 3; ++rep) {
    // Nonlinear in x: eps = 1e-3 keeps truncation ~1e-6 relative; 1e-2 tolerance (header note).
    auto c = directional(loss, {x.data(), w.data()}, {x.size(), w.size()}, {dx.data(), dw.data()}, 1e-3);
    CHECK(c.rel_err() < 1e-2);
  }
}

TEST_CASE("rope: double-precision angles, norm kept, backward is the inverse rotation", "[op][grad]") {
  const int64_t B = 2, T = 19, H = 3, HS = 16;
  const double theta = 5e5;
  std::vector<int64_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = 1000000 + 37 * t;  // near 1M: where fp32 angles fail
  std::vector<float> ct(T * HS / 2), st(T * HS / 2);
  cpu::rope_table(ct.data(), st.data(), pos.data(), T, HS, theta);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < HS / 2; ++i) {
      const double a = double(pos[t]) * std::pow(theta, -2.0 * i / HS);
      REQUIRE(std::abs(ct[t * HS / 2 + i] - std::cos(a)) < 1e-6);  // fp32 rounding of cos: 6e-8
      REQUIRE(std::abs(st[t * HS / 2 + i] - std::sin(a)) < 1e-6);
    }
  auto x = randn(B * T * H * HS);
  auto y = x;
  cpu::rope_apply(y.data(), ct.data(), st.data(), B, T, H, HS, +1);
  for (int64_t r = 0; r < B * T * H; ++r) {  // each (token, head) vector keeps its length
    double a = 0, b = 0;
    for (int64_t i = 0; i < HS; ++i) a += double(x[r * HS + i]) * x[r * HS + i], b += double(y[r * HS + i]) * y[r * HS + i];
    REQUIRE(std::sqrt(b) == Approx(std::sqrt(a)).epsilon(1e-5));
  }
  // pair (0, HS/2) of the first vector by the formula
  const double a0 = double(pos[0]);
  REQUIRE(y[0] == Approx(x[0] * std::cos(a0) - x[HS / 2] * std::sin(a0)).margin(1e-5));
  // The gradient of a rotation is the inverse rotation: <rope(x), g> = <x, rope^-1(g)>.
  auto g = randn(x.size());
  auto gi = g;
  cpu::rope_apply(gi.data(), ct.data(), st.data(), B, T, H, HS, -1);
  REQUIRE(dot(y, g) == Approx(dot(x, gi)).epsilon(1e-5));
  cpu::rope_apply(y.data(), ct.data(), st.data(), B, T, H, HS, -1);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == Approx(x[i]).margin(1e-5));
}

TEST_CASE("swiglu forward and backward", "[op][grad]") {
  const int64_t n = 301;
  auto g = randn(n, 3.0f), u = randn(n);
  std::vector<float> y(n), dg(n), du(n);
  cpu::swiglu_fwd(y.data(), g.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i)
    REQUIRE(y[i] == Approx(double(g[i]) / (1 + std::exp(-double(g[i]))) * u[i]).epsilon(1e-5).margin(1e-6));
  auto R = randn(n);
  cpu::swiglu_bwd(dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  auto loss = [&] {
    cpu::swiglu_fwd(y.data(), g.data(), u.data(), n);
    return dot(y, R);
  };
  auto c = directional(loss, {g.data(), u.data()}, {size_t(n), size_t(n)}, {dg.data(), du.data()}, 1e-3);
  CHECK(c.rel_err() < 1e-2);
}

TEST_CASE("embedding gathers rows and scatters gradients", "[op][grad]") {
  const int64_t V = 50, C = 8, N = 40;
  auto table = randn(V * C), dout = randn(N * C);
  std::vector<int32_t> tok(N);
  for (int64_t n = 0; n < N; ++n) tok[n] = int32_t((n * 7 + 3) % V);
  tok[5] = tok[9];  // a repeated token accumulates twice
  std::vector<float> out(N * C), dt(V * C, 0.0f);
  cpu::embedding_fwd(out.data(), tok.data(), table.data(), N, C, 0, V);
  for (int64_t n = 0; n < N; ++n) REQUIRE(std::memcmp(&out[n * C], &table[tok[n] * C], C * 4) == 0);
  cpu::embedding_bwd(dt.data(), dout.data(), tok.data(), N, C, 0, V);
  std::vector<double> ref(V * C, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) ref[tok[n] * C + c] += dout[n * C + c];
  CHECK(tol_ratio(dt.data(), ref.data(), dt.size(), 1e-6, 1e-6) <= 1.0);
  // A vocabulary slice [20, 35): rows of other tokens are zero, gradients land only in the slice.
  std::vector<float> part(N * C), dpart(15 * C, 0.0f);
  cpu::embedding_fwd(part.data(), tok.data(), table.data() + 20 * C, N, C, 20, 15);
  cpu::embedding_bwd(dpart.data(), dout.data(), tok.data(), N, C, 20, 15);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      REQUIRE(part[n * C + c] == (tok[n] >= 20 && tok[n] < 35 ? table[tok[n] * C + c] : 0.0f));
  for (int64_t i = 0; i < 15 * C; ++i) REQUIRE(dpart[i] == dt[20 * C + i]);
}

TEST_CASE("chunked LM-head cross-entropy equals the full-logits formula", "[op][grad]") {
  const int64_t N = 45, C = 24, V = 70;
  auto x = randn(N * C), W = randn(V * C, 0.5f);
  std::vector<int32_t> tgt(N);
  for (int64_t n = 0; n < N; ++n) tgt[n] = int32_t((n * 13 + 1) % V);
  tgt[3] = -1, tgt[17] = -1;  // no target there
  double ref = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (tgt[n] < 0) continue;
    std::vector<double> z(V);
    double mx = -1e300, s = 0;
    for (int64_t v = 0; v < V; ++v) {
      z[v] = 0;
      for (int64_t c = 0; c < C; ++c) z[v] += double(x[n * C + c]) * W[v * C + c];
      mx = std::max(mx, z[v]);
    }
    for (int64_t v = 0; v < V; ++v) s += std::exp(z[v] - mx);
    ref += mx + std::log(s) - z[tgt[n]];
  }
  std::vector<float> logits(N * V), dx(N * C), dW(V * C, 0.0f);
  for (int64_t chunk : {int64_t(1), int64_t(7), N}) {
    int64_t count = 0;
    const double l = lm_head_loss(x.data(), W.data(), tgt.data(), N, C, V, 0, nullptr, nullptr,
                                       1.0f, chunk, &count, nullptr);
    CHECK(count == N - 2);
    CHECK(l == Approx(ref).epsilon(1e-5));  // fp32 logits, double sums: ~1e-6 relative
  }
  const float scale = 0.37f;
  lm_head_loss(x.data(), W.data(), tgt.data(), N, C, V, 0, dx.data(), dW.data(), scale,
                    8, nullptr, nullptr);
  for (int64_t c = 0; c < C; ++c) {  // rows without a target get no gradient
    REQUIRE(dx[3 * C + c] == 0.0f);
    REQUIRE(dx[17 * C + c] == 0.0f);
  }
  auto loss = [&] {
    return scale * lm_head_loss(x.data(), W.data(), tgt.data(), N, C, V, 0, nullptr, nullptr, 1.0f,
                                     8, nullptr, nullptr);
  };
  for (int rep = 0; rep < 3; ++rep) {
    auto c = directional(loss, {x.data(), W.data()}, {x.size(), W.size()}, {dx.data(), dW.data()}, 1e-3);
    CHECK(c.rel_err() < 1e-2);
  }
}

TEST_CASE("LM-head row outputs: top-1 flags exactly the rows whose target has the largest logit; row losses", "[op]") {
  const int64_t N = 60, C = 16, V = 40;
  auto x = randn(N * C), W = randn(V * C, 0.5f);
  std::vector<int32_t> tgt(N);
  std::vector<int> expect(N, 0);
  int64_t checked = 0, hits = 0;
  for (int64_t n = 0; n < N; ++n) {  // the target is the argmax on even rows, the runner-up on odd
    const auto z = ranked_logits(x.data(), W.data(), n, C, V);
    tgt[n] = n % 2 ? z[1].second : z[0].second;
    expect[n] = n % 2 == 0;
    // fp32 logits can swap two entries closer than ~1e-5: such rows are left unchecked.
    if (z[0].first - z[1].first < 1e-4) expect[n] = -1;
  }
  tgt[5] = -1, tgt[8] = -1, expect[5] = expect[8] = 0;  // no target: never a hit
  std::vector<float> logits(N * V), loss(N, -1.0f);
  std::vector<uint8_t> top1(N, 7);
  for (int64_t chunk : {int64_t(1), int64_t(13), N}) {
    const double total = lm_head_loss(x.data(), W.data(), tgt.data(), N, C, V, 0, nullptr, nullptr, 1.0f,
                                      chunk, nullptr, nullptr, RowStats{top1.data(), loss.data()});
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      INFO("row " << n << " chunk " << chunk);
      sum += loss[n];
      // Row loss: log-sum-exp − target logit, from fp32 logits (~1e-6 relative; 1e-5 + 1e-5 abs).
      double ref = 0;
      if (tgt[n] >= 0) {
        const auto z = ranked_logits(x.data(), W.data(), n, C, V);
        double se = 0, zt = 0;
        for (const auto& [val, tok] : z) se += std::exp(val - z[0].first), zt = tok == tgt[n] ? val : zt;
        ref = z[0].first + std::log(se) - zt;
      }
      CHECK(std::abs(loss[n] - ref) <= 1e-5 * ref + 1e-5);
      if (expect[n] < 0) continue;
      CHECK(int(top1[n]) == expect[n]);
      checked += 1, hits += top1[n];
    }
    CHECK(sum == Approx(total).epsilon(1e-6));
  }
  CHECK(checked > 3 * N / 2);  // near-ties are rare
  CHECK(hits > 0);
}

TEST_CASE("AdamW update equals the formula; LR schedule shape", "[op]") {
  const int64_t n = 100, t = 7;
  auto p = randn(n), g = randn(n), m = randn(n, 0.1f), v = randn(n, 0.1f);
  for (auto& x : v) x = x * x;
  auto p2 = p, m2 = m, v2 = v;
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
  cpu::adamw_update(p2.data(), g.data(), m2.data(), v2.data(), n, lr, b1, b2, eps, wd, t);
  for (int64_t i = 0; i < n; ++i) {
    const double mi = b1 * double(m[i]) + (1 - b1) * double(g[i]);
    const double vi = b2 * double(v[i]) + (1 - b2) * double(g[i]) * g[i];
    const double mh = mi / (1 - std::pow(double(b1), t)), vh = vi / (1 - std::pow(double(b2), t));
    const double pi = p[i] - lr * (wd * double(p[i]) + mh / (std::sqrt(vh) + eps));
    REQUIRE(p2[i] == Approx(pi).epsilon(1e-5).margin(1e-6));
    REQUIRE(m2[i] == Approx(mi).epsilon(1e-5).margin(1e-7));
  }
  // The gradient's factors (1/targets, clip) and p_out folded in give the bits of the separate
  // passes they replace: scale(g, mean), scale(g, clip), then the update and a copy of p.
  for (const float clip : {1.0f, 0.37f}) {
    INFO("clip " << clip);
    const float mean = 1.0f / 3071.0f;
    auto gs = g;
    cpu::scale(gs.data(), mean, n), cpu::scale(gs.data(), clip, n);
    auto p3 = p, m3 = m, v3 = v, p4 = p, m4 = m, v4 = v;
    std::vector<float> out(size_t(n), -1.0f);
    cpu::adamw_update(p3.data(), gs.data(), m3.data(), v3.data(), n, lr, b1, b2, eps, wd, t);
    cpu::adamw_update(p4.data(), g.data(), m4.data(), v4.data(), n, lr, b1, b2, eps, wd, t, mean, clip, out.data());
    CHECK(std::memcmp(p3.data(), p4.data(), size_t(n) * sizeof(float)) == 0);
    CHECK(std::memcmp(m3.data(), m4.data(), size_t(n) * sizeof(float)) == 0);
    CHECK(std::memcmp(v3.data(), v4.data(), size_t(n) * sizeof(float)) == 0);
    CHECK(std::memcmp(out.data(), p4.data(), size_t(n) * sizeof(float)) == 0);
  }
  {  // likewise the norm's sum of squares with the mean's factor against scale, then sum_squares
    const float mean = 1.0f / 3071.0f;
    auto gs = g;
    cpu::scale(gs.data(), mean, n);
    const double fused = cpu::sum_squares(g.data(), n, mean), separate = cpu::sum_squares(gs.data(), n);
    CHECK(std::memcmp(&fused, &separate, sizeof(double)) == 0);
    CHECK(fused > 0.0);
  }
  OptimConfig o;
  o.lr = 1e-3, o.min_lr = 1e-4, o.warmup_steps = 10, o.schedule = Schedule::cosine;
  CHECK(lr_at(o, 0, 100) == Approx(1e-4));
  CHECK(lr_at(o, 9, 100) == Approx(1e-3));
  CHECK(lr_at(o, 10, 100) == Approx(1e-3));
  CHECK(lr_at(o, 99, 100) == Approx(1e-4));
  CHECK(lr_at(o, 54, 100) < 1e-3);
  CHECK(lr_at(o, 54, 100) > 1e-4);
  o.schedule = Schedule::constant;
  CHECK(lr_at(o, 80, 100) == Approx(1e-3));
}
