// test_flash_gpu.cpp — the GPU flash-attention kernels against the fp64 reference (attention_ref.h)
// on fresh random inputs: forward and backward at several shapes (odd T, GQA 1/4/8, HS 64/128,
// causal and full), strided inputs, ring-step partials merged over 2/4/8 key blocks, a
// finite-difference spot check. Tagged [gpu]: where no GPU is usable, tests/main.cpp leaves these
// out and reports them skipped (or fails, when [gpu] was asked for); built without CUDA, they are
// not compiled. The kernel under test is passed to each flash_fwd / flash_bwd call.
#include "catch.h"

#if defined(LONGCTX_CUDA)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "attention_ref.h"
#include "longctx/bf16.h"
#include "longctx/flash.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;

namespace {

template <class T>
struct Dev {  // a device buffer
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess); }
  ~Dev() { cudaFree(p); }
  void put(const std::vector<T>& h) { REQUIRE(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
  void fill_bytes(int byte) { REQUIRE(cudaMemset(p, byte, n * sizeof(T)) == cudaSuccess); }
};

// Random bf16 tensor: device bits and the exactly representable floats the reference sees.
struct Bf16Tensor {
  std::vector<float> f;
  Dev<uint16_t> d;
  explicit Bf16Tensor(size_t n, float scale = 1.0f) : f(randn(n, scale)), d(n) {
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; ++i) bits[i] = bf16_bits(f[i]), f[i] = bf16_to_float(bits[i]);
    d.put(bits);
  }
};

// ||a - ref|| / ||ref|| (Frobenius); NaN or an unwritten (poisoned) element gives infinity.
double rel_err(const std::vector<float>& a, const std::vector<double>& ref) {
  double e = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    e += (a[i] - ref[i]) * (a[i] - ref[i]), r += ref[i] * ref[i];
  }
  return std::sqrt(e / std::max(r, 1e-300));
}
std::vector<float> to_floats(const std::vector<uint16_t>& b) {
  std::vector<float> f(b.size());
  for (size_t i = 0; i < b.size(); ++i) f[i] = bf16_to_float(b[i]);
  return f;
}

struct Case {
  int64_t B, T, NH, NKV, HS;
  bool causal;
};

// Forward tolerance: P and the output are rounded to bf16 (2^-9 relative each), the rest is fp32:
// a relative Frobenius error of 1e-2 is the METHOD.md band for bf16 operands; NaN never passes.
constexpr double kFwdTol = 1e-2;
// Backward: dS and P also pass through bf16 before their matmuls: 2e-2.
constexpr double kBwdTol = 2e-2;

}  // namespace

TEST_CASE("GPU flash forward equals fp64 attention", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  std::vector<gpu::FwdKernel> kernels = {gpu::FwdKernel::kMmaSync};
  if (gpu::wgmma_available()) kernels.push_back(gpu::FwdKernel::kWgmma);
  for (gpu::FwdKernel kernel : kernels)
  for (Case c : {Case{1, 1, 1, 1, 64, true}, Case{2, 77, 4, 4, 64, true}, Case{1, 130, 8, 2, 128, true},
                 Case{1, 200, 8, 1, 128, true}, Case{2, 96, 4, 4, 128, false}, Case{1, 333, 4, 1, 64, false},
                 Case{1, 1000, 2, 2, 128, true}}) {
    INFO("kernel " << (kernel == gpu::FwdKernel::kWgmma ? "wgmma" : "mma.sync") << " B=" << c.B << " T=" << c.T
                    << " NH=" << c.NH << " NKV=" << c.NKV << " HS=" << c.HS << " causal=" << c.causal);
    const size_t nq = c.B * c.T * c.NH * c.HS, nk = c.B * c.T * c.NKV * c.HS;
    Bf16Tensor q(nq), k(nk), v(nk);
    Dev<uint16_t> o(nq);
    Dev<float> o32(nq), lse(c.B * c.T * c.NH);
    o.fill_bytes(0xff), o32.fill_bytes(0xff), lse.fill_bytes(0xff);  // NaN: every element must be written
    const auto s = gpu::flash_shape(c.B, c.T, c.T, c.NH, c.NKV, c.HS, c.causal ? gpu::Mask::kCausal : gpu::Mask::kFull);
    gpu::flash_fwd(s, q.d.p, k.d.p, v.d.p, o.p, o32.p, lse.p, nullptr, kernel);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    cpu::AttnShape cs{c.B, c.T, c.T, c.NH, c.NKV, c.HS};
    cs.causal = c.causal;
    const Naive r = naive(cs, q.f, k.f, v.f, nullptr);
    CHECK(rel_err(to_floats(o.get()), r.o) < kFwdTol);
    CHECK(rel_err(o32.get(), r.o) < kFwdTol);
    // lse: fp32 sums of exact bf16 products; 1e-3 relative.
    CHECK(rel_err(lse.get(), r.lse) < 1e-3);
  }
}

TEST_CASE("GPU flash forward reads strided Q/K/V in place", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  // One fused (B, T, NH + 2·NKV, HS) buffer, as a fused QKV projection would produce it.
  const int64_t B = 2, T = 90, NH = 4, NKV = 2, HS = 64, W = NH + 2 * NKV;
  Bf16Tensor qkv(B * T * W * HS);
  gpu::FlashShape s = gpu::flash_shape(B, T, T, NH, NKV, HS, gpu::Mask::kCausal);
  s.q_sb = T * W * HS, s.q_st = W * HS, s.k_sb = T * W * HS, s.k_st = W * HS;
  Dev<float> o32(B * T * NH * HS), lse(B * T * NH);
  gpu::flash_fwd(s, qkv.d.p, qkv.d.p + NH * HS, qkv.d.p + (NH + NKV) * HS, nullptr, o32.p, lse.p);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<float> q(B * T * NH * HS), k(B * T * NKV * HS), v(k.size());
  for (int64_t bt = 0; bt < B * T; ++bt) {
    std::copy_n(&qkv.f[bt * W * HS], NH * HS, &q[bt * NH * HS]);
    std::copy_n(&qkv.f[bt * W * HS + NH * HS], NKV * HS, &k[bt * NKV * HS]);
    std::copy_n(&qkv.f[bt * W * HS + (NH + NKV) * HS], NKV * HS, &v[bt * NKV * HS]);
  }
  const Naive r = naive(cpu::AttnShape{B, T, T, NH, NKV, HS}, q, k, v, nullptr);
  CHECK(rel_err(o32.get(), r.o) < kFwdTol);
}

TEST_CASE("GPU ring-step partials over 2, 4 and 8 key blocks merge to full attention", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  const int64_t B = 1, T = 512, NH = 4, NKV = 1, HS = 128;
  Bf16Tensor q(B * T * NH * HS), k(B * T * NKV * HS), v(B * T * NKV * HS);
  const Naive r = naive(cpu::AttnShape{B, T, T, NH, NKV, HS}, q.f, k.f, v.f, nullptr);
  for (int64_t nblk : {2, 4, 8}) {
    const int64_t Tb = T / nblk;
    Dev<float> o(B * Tb * NH * HS), lse(B * Tb * NH), ob(o.n), lb(lse.n);
    for (int64_t qb = 0; qb < nblk; ++qb) {
      bool first = true;
      for (int64_t i = 0; i < nblk; ++i) {  // ring order: own block first
        const int64_t kb = (qb - i + nblk) % nblk;
        const gpu::Mask mask = kb > qb ? gpu::Mask::kSkip : gpu::Mask::kCausal;
        const auto s = gpu::flash_shape(B, Tb, Tb, NH, NKV, HS, mask, qb * Tb, kb * Tb);
        if (mask == gpu::Mask::kSkip) continue;
        gpu::flash_fwd(s, q.d.p + qb * Tb * NH * HS, k.d.p + kb * Tb * NKV * HS, v.d.p + kb * Tb * NKV * HS,
                       nullptr, first ? o.p : ob.p, first ? lse.p : lb.p);
        if (!first) gpu::flash_merge(o.p, lse.p, ob.p, lb.p, B * Tb * NH, HS);
        first = false;
      }
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      std::vector<double> ro(r.o.begin() + qb * Tb * NH * HS, r.o.begin() + (qb + 1) * Tb * NH * HS);
      std::vector<double> rl(r.lse.begin() + qb * Tb * NH, r.lse.begin() + (qb + 1) * Tb * NH);
      INFO("blocks " << nblk << " query block " << qb);
      CHECK(rel_err(o.get(), ro) < kFwdTol);
      CHECK(rel_err(lse.get(), rl) < 1e-3);
    }
  }
}

TEST_CASE("GPU flash backward equals the fp64 gradients, whole and in ring steps", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  std::vector<gpu::BwdKernel> kernels = {gpu::BwdKernel::kMmaSync};
  if (gpu::wgmma_available()) kernels.push_back(gpu::BwdKernel::kWgmma);
  const char* const names[] = {"auto", "mma.sync", "wgmma"};
  for (gpu::BwdKernel kernel : kernels)
  for (Case c : {Case{1, 77, 4, 4, 64, true}, Case{2, 130, 8, 2, 128, true}, Case{1, 200, 8, 1, 128, false},
                 Case{1, 64, 2, 2, 64, false}, Case{1, 300, 4, 1, 64, true}, Case{1, 520, 8, 2, 128, true},
                 // hd 64 over several key blocks without the mask and with B = 2, and a long walk
                 // (32 steps per block: every Q/dO slot and both dSᵀ buffers reused many times)
                 Case{2, 333, 6, 3, 64, false}, Case{1, 1000, 2, 1, 64, true}}) {
    INFO("kernel " << names[int(kernel)] << " B=" << c.B << " T=" << c.T << " NH=" << c.NH << " NKV=" << c.NKV << " HS=" << c.HS << " causal=" << c.causal);
    const size_t nq = c.B * c.T * c.NH * c.HS, nk = c.B * c.T * c.NKV * c.HS;
    Bf16Tensor q(nq), k(nk), v(nk), dout(nq);
    const gpu::Mask mask = c.causal ? gpu::Mask::kCausal : gpu::Mask::kFull;
    const auto s = gpu::flash_shape(c.B, c.T, c.T, c.NH, c.NKV, c.HS, mask);
    Dev<uint16_t> o(nq);
    Dev<float> lse(c.B * c.T * c.NH), delta(lse.n), dq(nq), dk(nk), dv(nk);
    gpu::flash_fwd(s, q.d.p, k.d.p, v.d.p, o.p, nullptr, lse.p);
    gpu::flash_delta(s, o.p, dout.d.p, delta.p);
    dq.fill_bytes(0), dk.fill_bytes(0), dv.fill_bytes(0);
    gpu::flash_bwd(s, q.d.p, k.d.p, v.d.p, dout.d.p, lse.p, delta.p, dq.p, dk.p, dv.p, nullptr, kernel);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    cpu::AttnShape cs{c.B, c.T, c.T, c.NH, c.NKV, c.HS};
    cs.causal = c.causal;
    const Naive r = naive(cs, q.f, k.f, v.f, &dout.f);
    CHECK(rel_err(dq.get(), r.dq) < kBwdTol);
    CHECK(rel_err(dk.get(), r.dk) < kBwdTol);
    CHECK(rel_err(dv.get(), r.dv) < kBwdTol);
    if (!c.causal || c.B != 1 || c.T % 4) continue;
    // The same gradients as the sum of 4 ring steps (queries of block qb against key block kb).
    const int64_t Tb = c.T / 4;
    Dev<float> dq2(nq), dk2(nk), dv2(nk);
    dq2.fill_bytes(0), dk2.fill_bytes(0), dv2.fill_bytes(0);
    for (int64_t qb = 0; qb < 4; ++qb)
      for (int64_t kb = 0; kb <= qb; ++kb) {
        auto sb = gpu::flash_shape(1, Tb, Tb, c.NH, c.NKV, c.HS, gpu::Mask::kCausal, qb * Tb, kb * Tb);
        sb.q_sb = c.T * c.NH * c.HS, sb.k_sb = c.T * c.NKV * c.HS;
        const int64_t qo = qb * Tb * c.NH * c.HS, ko = kb * Tb * c.NKV * c.HS;
        // dq/dk/dv outputs are contiguous blocks of the full (B=1) tensors: offsets only.
        gpu::flash_bwd(sb, q.d.p + qo, k.d.p + ko, v.d.p + ko, dout.d.p + qo, lse.p + qb * Tb * c.NH,
                       delta.p + qb * Tb * c.NH, dq2.p + qo, dk2.p + ko, dv2.p + ko, nullptr, kernel);
      }
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(rel_err(dq2.get(), r.dq) < kBwdTol);
    CHECK(rel_err(dk2.get(), r.dk) < kBwdTol);
    CHECK(rel_err(dv2.get(), r.dv) < kBwdTol);
    // All queries against each half of the keys: Tq != Tk, and the second half starts past the
    // first queries (k_pos0 > q_pos0), so its key blocks walk only the later query tiles.
    const int64_t Th = c.T / 2;
    Dev<float> dq3(nq), dk3(nk), dv3(nk);
    dq3.fill_bytes(0), dk3.fill_bytes(0), dv3.fill_bytes(0);
    for (int64_t kb = 0; kb < 2; ++kb) {
      const auto sh = gpu::flash_shape(1, c.T, Th, c.NH, c.NKV, c.HS, gpu::Mask::kCausal, 0, kb * Th);
      const int64_t ko = kb * Th * c.NKV * c.HS;
      gpu::flash_bwd(sh, q.d.p, k.d.p + ko, v.d.p + ko, dout.d.p, lse.p, delta.p, dq3.p, dk3.p + ko, dv3.p + ko,
                     nullptr, kernel);
    }
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    INFO("all queries against two key halves");
    CHECK(rel_err(dq3.get(), r.dq) < kBwdTol);
    CHECK(rel_err(dk3.get(), r.dk) < kBwdTol);
    CHECK(rel_err(dv3.get(), r.dv) < kBwdTol);
  }
}

TEST_CASE("GPU flash backward: the mma.sync kernel is bitwise repeatable", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  const int64_t B = 1, T = 333, NH = 8, NKV = 2, HS = 128, nq = B * T * NH * HS, nk = B * T * NKV * HS;
  Bf16Tensor q(nq), k(nk), v(nk), dout(nq);
  const auto s = gpu::flash_shape(B, T, T, NH, NKV, HS, gpu::Mask::kCausal);
  Dev<uint16_t> o(nq);
  Dev<float> lse(B * T * NH), delta(lse.n), dq(nq), dk(nk), dv(nk);
  gpu::flash_fwd(s, q.d.p, k.d.p, v.d.p, o.p, nullptr, lse.p);
  gpu::flash_delta(s, o.p, dout.d.p, delta.p);
  std::vector<float> first[3];
  for (int run = 0; run < 3; ++run) {
    dq.fill_bytes(0), dk.fill_bytes(0), dv.fill_bytes(0);
    gpu::flash_bwd(s, q.d.p, k.d.p, v.d.p, dout.d.p, lse.p, delta.p, dq.p, dk.p, dv.p, nullptr,
                   gpu::BwdKernel::kMmaSync);
    const std::vector<float> got[3] = {dq.get(), dk.get(), dv.get()};
    for (int t = 0; t < 3; ++t) {
      if (run == 0) first[t] = got[t];
      else CHECK(std::memcmp(got[t].data(), first[t].data(), got[t].size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("GPU flash backward: finite-difference spot check", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  const int64_t T = 96, NH = 2, NKV = 1, HS = 64;
  Bf16Tensor q(T * NH * HS), k(T * NKV * HS), v(T * NKV * HS), R(T * NH * HS);
  const auto s = gpu::flash_shape(1, T, T, NH, NKV, HS, gpu::Mask::kCausal);
  Dev<uint16_t> o(q.f.size());
  Dev<float> o32(q.f.size()), lse(T * NH), delta(T * NH), dq(q.f.size()), dk(k.f.size()), dv(v.f.size());
  auto set = [](Bf16Tensor& t, size_t idx, float val) {
    const uint16_t bits = bf16_bits(val);
    REQUIRE(cudaMemcpy(t.d.p + idx, &bits, 2, cudaMemcpyHostToDevice) == cudaSuccess);
  };
  auto loss = [&] {  // L = <O, R>, O from the fp32 output
    gpu::flash_fwd(s, q.d.p, k.d.p, v.d.p, nullptr, o32.p, lse.p);
    const auto out = o32.get();
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += double(out[i]) * R.f[i];
    return l;
  };
  // The checked elements are set to 0.5 so that 0.5 ± 0.25 are exact bf16 values. A q element
  // changes one output row; a v element leaves the probabilities bit-identical (O is linear in
  // V). Rows a perturbation does not reach are computed identically in both evaluations, so the
  // bf16 rounding of P in the forward only adds noise from the changed rows. (K, whose change moves
  // many rows' probabilities, is covered by the fp64 comparison above.)
  const std::vector<std::pair<Bf16Tensor*, size_t>> points = {
      {&q, 40 * NH * HS + 3}, {&v, 50 * HS + 11}, {&q, 90 * NH * HS + 70}, {&v, 2 * HS + 40}};
  for (auto [t, idx] : points) set(*t, idx, 0.5f);
  gpu::flash_fwd(s, q.d.p, k.d.p, v.d.p, o.p, nullptr, lse.p);
  gpu::flash_delta(s, o.p, R.d.p, delta.p);
  dq.fill_bytes(0), dk.fill_bytes(0), dv.fill_bytes(0);
  gpu::flash_bwd(s, q.d.p, k.d.p, v.d.p, R.d.p, lse.p, delta.p, dq.p, dk.p, dv.p);
  const auto gq = dq.get(), gk = dk.get(), gv = dv.get();
  for (auto [t, idx] : points) {
    const float h = 0.25f;
    set(*t, idx, 0.5f + h);
    const double lp = loss();
    set(*t, idx, 0.5f - h);
    const double lm = loss();
    set(*t, idx, 0.5f);
    const double fd = (lp - lm) / (2 * h);
    const double an = t == &q ? gq[idx] : t == &k ? gk[idx] : gv[idx];
    INFO("fd " << fd << " analytic " << an);
    // Central difference over ±0.25 (a score moves by ~0.03: truncation ~1e-3 relative) plus
    // the bf16 rounding of P in one row (~64·6e-4 / 0.5 ≈ 0.01): 5% of the value + 0.03.
    CHECK(std::abs(fd - an) <= 0.05 * std::abs(an) + 3e-2);
  }
}

namespace {
// Every element equal as a float (NaN, e.g. an unwritten poisoned element, never is).
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}
}  // namespace

TEST_CASE("GPU flash forward merging in its epilogue equals the block partial then flash_merge, bit for bit",
          "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  // Same formula in both (merge_weights, merge_o: flash_common.cuh), so the same bits. The running
  // partial comes from a first block; the second block's keys start at position 40, so query rows
  // 0..39 see none of them and must keep their values. From an empty partial (0, -inf) the merge
  // gives the plain forward's output exactly (weights 0 and 1).
  std::vector<gpu::FwdKernel> kernels = {gpu::FwdKernel::kMmaSync};
  if (gpu::wgmma_available()) kernels.push_back(gpu::FwdKernel::kWgmma);
  for (gpu::FwdKernel kernel : kernels)
    for (Case c : {Case{1, 200, 8, 2, 128, true}, Case{2, 130, 4, 4, 64, true}, Case{1, 96, 4, 1, 64, false}}) {
      INFO("kernel " << (kernel == gpu::FwdKernel::kWgmma ? "wgmma" : "mma.sync") << " B=" << c.B << " T=" << c.T
                      << " NH=" << c.NH << " HS=" << c.HS << " causal=" << c.causal);
      const size_t nq = c.B * c.T * c.NH * c.HS, nk = c.B * c.T * c.NKV * c.HS;
      Bf16Tensor q(nq), k1(nk), v1(nk), k2(nk), v2(nk);
      const gpu::Mask mask = c.causal ? gpu::Mask::kCausal : gpu::Mask::kFull;
      const auto s1 = gpu::flash_shape(c.B, c.T, c.T, c.NH, c.NKV, c.HS, mask);
      const auto s2 = gpu::flash_shape(c.B, c.T, c.T, c.NH, c.NKV, c.HS, mask, 0, c.causal ? 40 : 0);
      Dev<float> o(nq), lse(c.B * c.T * c.NH), ob(nq), lb(lse.n), om(nq), lm(lse.n);
      gpu::flash_fwd(s1, q.d.p, k1.d.p, v1.d.p, nullptr, o.p, lse.p, nullptr, kernel);
      REQUIRE(cudaMemcpy(om.p, o.p, nq * 4, cudaMemcpyDeviceToDevice) == cudaSuccess);
      REQUIRE(cudaMemcpy(lm.p, lse.p, lse.n * 4, cudaMemcpyDeviceToDevice) == cudaSuccess);
      const std::vector<float> before = o.get();
      gpu::flash_fwd(s2, q.d.p, k2.d.p, v2.d.p, nullptr, ob.p, lb.p, nullptr, kernel);
      gpu::flash_merge(o.p, lse.p, ob.p, lb.p, c.B * c.T * c.NH, c.HS);
      gpu::flash_fwd(s2, q.d.p, k2.d.p, v2.d.p, nullptr, om.p, lm.p, nullptr, kernel, /*merge=*/true);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      const std::vector<float> want = o.get(), got = om.get();
      CHECK(same_values(got, want));
      CHECK(same_values(lm.get(), lse.get()));
      if (c.causal) {  // rows 0..39 of each sequence and head unchanged, later rows changed
        int64_t kept = 0, moved = 0;
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t t = 0; t < c.T; ++t)
            for (int64_t x = 0; x < c.NH * c.HS; ++x) {
              const size_t at = size_t((b * c.T + t) * c.NH * c.HS + x);
              if (t < 40) kept += got[at] == before[at];
              else moved += got[at] != before[at];
            }
        CHECK(kept == c.B * 40 * c.NH * c.HS);
        CHECK(moved > (c.B * (c.T - 40) * c.NH * c.HS) / 2);
      }
      // From an empty partial: the plain forward's o32 and lse.
      std::vector<float> zeros(nq, 0.0f), neg_inf(lse.n, -INFINITY);
      om.put(zeros), lm.put(neg_inf);
      gpu::flash_fwd(s1, q.d.p, k1.d.p, v1.d.p, nullptr, om.p, lm.p, nullptr, kernel, /*merge=*/true);
      gpu::flash_fwd(s1, q.d.p, k1.d.p, v1.d.p, nullptr, o.p, lse.p, nullptr, kernel);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      INFO("merged into (0, -inf)");
      CHECK(same_values(om.get(), o.get()));
      CHECK(same_values(lm.get(), lse.get()));
    }
}

TEST_CASE("GPU flash backward writing dK/dV equals accumulating into zeros", "[gpu]") {
  REQUIRE(gpu::gpu_available());  // main.cpp does not run [gpu] tests without one
  // All queries (positions 0..T-1) against keys from position T/2: the keys past T-1 see no query
  // and must be written as zeros over the NaN poison. dK/dV are owned by one block each in both
  // kernels (no atomics), so written and accumulated-from-zero give the same values; dQ is added
  // either way. A block wholly in the future (kSkip) writes zeros and leaves dQ alone.
  std::vector<gpu::BwdKernel> kernels = {gpu::BwdKernel::kMmaSync};
  if (gpu::wgmma_available()) kernels.push_back(gpu::BwdKernel::kWgmma);
  for (gpu::BwdKernel kernel : kernels)
    for (Case c : {Case{1, 260, 8, 2, 128, true}, Case{2, 130, 4, 4, 64, true}, Case{1, 200, 4, 1, 64, false}}) {
      INFO("kernel " << (kernel == gpu::BwdKernel::kWgmma ? "wgmma" : "mma.sync") << " B=" << c.B << " T=" << c.T
                      << " NH=" << c.NH << " HS=" << c.HS << " causal=" << c.causal);
      const size_t nq = c.B * c.T * c.NH * c.HS, nk = c.B * c.T * c.NKV * c.HS;
      Bf16Tensor q(nq), k(nk), v(nk), dout(nq);
      const int64_t k_pos0 = c.causal ? c.T / 2 : 0;
      const auto s = gpu::flash_shape(c.B, c.T, c.T, c.NH, c.NKV, c.HS,
                                      c.causal ? gpu::Mask::kCausal : gpu::Mask::kFull, 0, k_pos0);
      Dev<uint16_t> o(nq);
      Dev<float> lse(c.B * c.T * c.NH), delta(lse.n), dq(nq), dk(nk), dv(nk), dq2(nq), dk2(nk), dv2(nk);
      gpu::flash_fwd(s, q.d.p, k.d.p, v.d.p, o.p, nullptr, lse.p);
      gpu::flash_delta(s, o.p, dout.d.p, delta.p);
      dq.fill_bytes(0), dk.fill_bytes(0), dv.fill_bytes(0), dq2.fill_bytes(0), dk2.fill_bytes(0xff), dv2.fill_bytes(0xff);
      gpu::flash_bwd(s, q.d.p, k.d.p, v.d.p, dout.d.p, lse.p, delta.p, dq.p, dk.p, dv.p, nullptr, kernel);
      gpu::flash_bwd(s, q.d.p, k.d.p, v.d.p, dout.d.p, lse.p, delta.p, dq2.p, dk2.p, dv2.p, nullptr, kernel,
                     /*dkv_accumulate=*/false);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      const std::vector<float> gk = dk2.get(), gv = dv2.get();
      CHECK(same_values(gk, dk.get()));
      CHECK(same_values(gv, dv.get()));
      const std::vector<float> gq = dq.get();  // the same sums; wgmma's atomics may order them differently
      CHECK(rel_err(dq2.get(), std::vector<double>(gq.begin(), gq.end())) < 1e-5);
      if (c.causal) {
        int64_t unseen = 0, unseen_zero = 0, seen_nonzero = 0;
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t j = 0; j < c.T; ++j)
            for (int64_t x = 0; x < c.NKV * c.HS; ++x) {
              const size_t at = size_t((b * c.T + j) * c.NKV * c.HS + x);
              if (k_pos0 + j > c.T - 1) unseen += 1, unseen_zero += gk[at] == 0.0f && gv[at] == 0.0f;
              else seen_nonzero += gk[at] != 0.0f;
            }
        CHECK(unseen == c.B * k_pos0 * c.NKV * c.HS);  // keys at positions T..T + T/2 - 1
        CHECK(unseen_zero == unseen);
        CHECK(seen_nonzero > 0);
      }
      // kSkip: dK/dV written as zeros, dQ unchanged.
      const auto skip = gpu::flash_shape(c.B, c.T, c.T, c.NH, c.NKV, c.HS, gpu::Mask::kSkip, 0, c.T);
      const std::vector<float> dq_before = dq2.get();
      dk2.fill_bytes(0xff), dv2.fill_bytes(0xff);
      gpu::flash_bwd(skip, q.d.p, k.d.p, v.d.p, dout.d.p, lse.p, delta.p, dq2.p, dk2.p, dv2.p, nullptr, kernel,
                     /*dkv_accumulate=*/false);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      INFO("kSkip");
      CHECK(same_values(dk2.get(), std::vector<float>(nk, 0.0f)));
      CHECK(same_values(dv2.get(), std::vector<float>(nk, 0.0f)));
      CHECK(same_values(dq2.get(), dq_before));
    }
}

#endif  // LONGCTX_CUDA (without it main.cpp reports the [gpu] tests as not compiled)
