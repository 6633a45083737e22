// test_gemm_gpu.cpp — the cuBLASLt matrix products (backend/cuda_gemm.h) against the CPU fp32
// reference linear ops (ops.h) on fresh random bf16 inputs, with fp32 and bf16 results and with
// accumulation (beta = 1). Tolerances come from fp32 summation: each of the two sides sums K
// products, so they differ by at most 2·K·u·Σ|a·b| per element (u = 2^-24), computed per element.
#include "catch.h"

#if defined(LONGCTX_CUDA)
#include "gpu_util.h"
#include "longctx/backend/cuda_gemm.h"
#include "longctx/flash.h"
#include "longctx/ops.h"

using namespace longctx;
using namespace longctx::test;

namespace {

struct Shape {
  int64_t N, I, O;
};
constexpr Shape kShapes[] = {{1, 1, 1}, {37, 64, 24}, {130, 96, 200}, {257, 320, 48}};

// Σ_k |a[r, k] · b[c, k]| for row-major a (R, K), b (Cn, K): the scale of each product's rounding.
std::vector<double> abs_dots(const std::vector<float>& a, const std::vector<float>& b, int64_t R, int64_t Cn,
                             int64_t K, int64_t a_stride_r, int64_t a_stride_k, int64_t b_stride_c,
                             int64_t b_stride_k) {
  std::vector<double> s(sz(R * Cn), 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < Cn; ++c) {
      double t = 0;
      for (int64_t k = 0; k < K; ++k)
        t += std::fabs(double(a[sz(r * a_stride_r + k * a_stride_k)]) * b[sz(c * b_stride_c + k * b_stride_k)]);
      s[sz(r * Cn + c)] = t;
    }
  return s;
}

// Runs product(out, out_f32) into an fp32 and into a bf16 result and checks both against ref: the
// bf16 one within the fp32 bound (times kSlack) plus one bf16 rounding.
template <class Product, class Tol>
void check_fp32_and_bf16(Product product, const std::vector<float>& ref, Tol tol, const std::string& what) {
  Dev<float> r32(ref.size());
  product(static_cast<void*>(r32.p), true);
  expect_close(r32.get(), ref, tol, 0.0, (what + " fp32").c_str());
  Dev<uint16_t> r16(ref.size());
  product(static_cast<void*>(r16.p), false);
  expect_close(floats(r16.get()), round_bf16(ref), [&](size_t i) { return kSlack * tol(i); }, kBf16Ulp,
               (what + " bf16").c_str());
}

}  // namespace

TEST_CASE("GPU linear (cuBLASLt) forward equals the CPU's: fp32 and bf16 results, accumulation", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  gpu::Blas blas;
  for (const Shape& s : kShapes) {
    INFO("N=" << s.N << " I=" << s.I << " O=" << s.O);
    Bf16 in(sz(s.N * s.I), 1.0f), W(sz(s.O * s.I), 1.0f);
    std::vector<float> ref(sz(s.N * s.O));
    cpu::linear_fwd(ref.data(), in.f.data(), W.f.data(), s.N, s.I, s.O);
    const std::vector<double> mag = abs_dots(in.f, W.f, s.N, s.O, s.I, s.I, 1, s.I, 1);
    auto tol = [&](size_t i) { return 2.0 * double(s.I) * kU * mag[i]; };
    check_fp32_and_bf16([&](void* out, bool f32) { blas.linear_fwd(out, f32, in.d.p, W.d.p, s.N, s.I, s.O); }, ref,
                        tol, "out");
    // beta = 1: out += in·Wᵀ onto fp32 values already there (one more rounding of the sum: u·|ref|).
    const std::vector<float> c0 = randn(sz(s.N * s.O));
    Dev<float> acc(c0);
    blas.linear_fwd(acc.p, true, in.d.p, W.d.p, s.N, s.I, s.O, 1.0f);
    std::vector<float> ref_acc(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) ref_acc[i] = c0[i] + ref[i];
    expect_close(acc.get(), ref_acc, tol, 2 * kU, "fp32 out, beta 1");
  }
}

TEST_CASE("GPU linear (cuBLASLt) backward equals the CPU's: input and weight gradients", "[gpu][kernels]") {
  REQUIRE(gpu::gpu_available());
  gpu::Blas blas;
  for (const Shape& s : kShapes) {
    INFO("N=" << s.N << " I=" << s.I << " O=" << s.O);
    Bf16 in(sz(s.N * s.I), 1.0f), W(sz(s.O * s.I), 1.0f), dout(sz(s.N * s.O), 1.0f);
    // din (N, I) = dout · W: K = O.
    std::vector<float> din_ref(sz(s.N * s.I));
    cpu::linear_bwd(din_ref.data(), nullptr, dout.f.data(), in.f.data(), W.f.data(), s.N, s.I, s.O, false);
    const std::vector<double> mag_d = abs_dots(dout.f, W.f, s.N, s.I, s.O, s.O, 1, 1, s.I);
    auto tol_d = [&](size_t i) { return 2.0 * double(s.O) * kU * mag_d[i]; };
    check_fp32_and_bf16(
        [&](void* din, bool f32) { blas.linear_bwd_data(din, f32, dout.d.p, W.d.p, s.N, s.I, s.O); }, din_ref, tol_d,
        "din");
    // dW (O, I) += doutᵀ · in onto a gradient already there: K = N.
    const std::vector<float> g0 = randn(sz(s.O * s.I));
    std::vector<float> dw_ref = g0;
    cpu::linear_bwd(nullptr, dw_ref.data(), dout.f.data(), in.f.data(), nullptr, s.N, s.I, s.O, false);
    const std::vector<double> mag_w = abs_dots(dout.f, in.f, s.O, s.I, s.N, 1, s.O, 1, s.I);
    Dev<float> dw(g0);
    blas.linear_bwd_weight(dw.p, dout.d.p, in.d.p, s.N, s.I, s.O);
    expect_close(dw.get(), dw_ref, [&](size_t i) { return 2.0 * double(s.N) * kU * mag_w[i]; }, 2 * kU,
                 "dW += ");
  }
}

#endif  // LONGCTX_CUDA
