// gpu_util.h — what the [gpu] op tests share: bf16 on the host (bf16.h's rounding), device
// buffers poisoned at birth (an unwritten element reads as NaN), bf16 inputs seen alike by both
// sides, and the tolerance check |x − ref| <= atol + rtol·|ref| that reports the worst element.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "catch.h"
#include "longctx/bf16.h"
#include "util.h"

namespace longctx::test {

inline size_t sz(int64_t n) { return size_t(n); }  // (not size_t(n): a declaration `T x(size_t(n))` declares a function)

// The one host bf16 rounding (bf16.h), under the names these tests use.
inline uint16_t to_bits(float x) { return bf16_bits(x); }
inline float from_bits(uint16_t h) { return bf16_to_float(h); }
inline float round_bf16(float x) { return from_bits(to_bits(x)); }
inline std::vector<float> round_bf16(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}
inline std::vector<float> floats(const std::vector<uint16_t>& b) {
  std::vector<float> f(b.size());
  for (size_t i = 0; i < b.size(); ++i) f[i] = from_bits(b[i]);
  return f;
}
inline std::vector<uint16_t> bits(const std::vector<float>& f) {
  std::vector<uint16_t> b(f.size());
  for (size_t i = 0; i < f.size(); ++i) b[i] = to_bits(f[i]);
  return b;
}
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class T>
struct Dev {  // a device buffer of n elements, poisoned (0xff bytes: NaN for floats) at birth
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) {
    REQUIRE(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemset(p, 0xff, std::max<size_t>(n, 1) * sizeof(T)) == cudaSuccess);
  }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) { put(h); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  void put(const std::vector<T>& h) {
    REQUIRE(h.size() == n);
    REQUIRE(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  std::vector<T> get() const {
    std::vector<T> h(n);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
};

// Random bf16 values: the floats the CPU reference sees and their bits on the device.
struct Bf16 {
  std::vector<float> f;
  Dev<uint16_t> d;
  explicit Bf16(std::vector<float> v) : f(round_bf16(std::move(v))), d(bits(f)) {}
  Bf16(size_t n, float scale) : Bf16(randn(n, scale)) {}
};

// Counts the elements outside atol[i] + rtol·|ref[i]| (NaN counts); reports the worst one.
template <class Atol>
void expect_close(const std::vector<float>& got, const std::vector<float>& ref, Atol atol, double rtol,
                  const char* what) {
  REQUIRE(got.size() == ref.size());
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = atol(i) + rtol * std::fabs(double(ref[i]));
    const double err = std::fabs(double(got[i]) - double(ref[i]));
    if (!(err <= tol)) ++bad;
    const double ratio = std::isfinite(err) ? err / std::max(tol, 1e-300) : INFINITY;
    if (ratio > worst_ratio || i == 0) worst_ratio = ratio, worst = i;
  }
  INFO(what << ": " << bad << " of " << got.size() << " outside tolerance; worst [" << worst << "] got "
            << got[worst] << " ref " << ref[worst] << " (err/tol " << worst_ratio << ")");
  CHECK(bad == 0);
}
inline auto const_tol(double a) {
  return [a](size_t) { return a; };
}

// Rounding to bf16: x in [2^e, 2^(e+1)) has ulp 2^(e-7) <= 2^-7·|x|. Two fp32 values a, b that differ
// by d round to values that differ by <= d + ulp(a)/2 + ulp(b)/2 <= 1.004·d + 2^-7·(1 + 2^-8)·|bf16(a)|:
// so a bound d on the fp32 difference (the atol's), times 1.004 (kSlack), plus kBf16Ulp·|ref|.
constexpr double kBf16Ulp = 0x1p-7 + 0x1p-14;
constexpr double kSlack = 1.004;
constexpr double kU = 0x1p-24;  // fp32 unit roundoff

using Sizes = std::initializer_list<std::pair<int64_t, int64_t>>;  // (N, C)

inline std::mt19937_64 rng() { return std::mt19937_64(fresh_seed()); }


}  // namespace longctx::test
