// grad_check.h — finite-difference checks of hand-written backward passes.
//
// Directional check: for a scalar loss L(x) and its analytic gradient g, compare
//   (L(x + eps·d) - L(x - eps·d)) / (2·eps)   with   <g, d>
// along fresh random directions d. Central differences have O(eps²) truncation error; fp32
// rounding of L adds ~1e-7·|L|/eps. With eps = 1e-3 and losses of order 1-100 that is well under
// the 1e-2 relative tolerance used by the callers (each states its own). The error is relative to
// the larger of |<g, d>| and |g|: for a standard-normal d, <g, d> ~ N(0, |g|²), so |g| is its typical
// size, and a direction that happens to be nearly orthogonal to g (|<g, d>| << |g|) must not turn
// the fp32 noise of L into a spurious failure.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "util.h"

namespace longctx::test {

struct DirCheck {
  double fd = 0.0, analytic = 0.0, gnorm = 0.0;  // gnorm = |g| over every checked input
  double rel_err() const {
    return std::abs(fd - analytic) / std::max({1e-12, std::abs(analytic), gnorm});
  }
};

// x is perturbed in place and restored. loss(x) must not have side effects on x.
inline DirCheck directional(const std::function<double()>& loss, std::vector<float*> xs,
                            std::vector<size_t> ns, std::vector<const float*> gs, double eps) {
  std::vector<std::vector<float>> dirs, saved;
  DirCheck r;
  for (size_t i = 0; i < xs.size(); ++i) {
    dirs.push_back(randn(ns[i]));
    saved.emplace_back(xs[i], xs[i] + ns[i]);
    for (size_t j = 0; j < ns[i]; ++j)
      r.analytic += double(gs[i][j]) * dirs[i][j], r.gnorm += double(gs[i][j]) * gs[i][j];
  }
  r.gnorm = std::sqrt(r.gnorm);
  auto shift = [&](double s) {
    for (size_t i = 0; i < xs.size(); ++i)
      for (size_t j = 0; j < ns[i]; ++j) xs[i][j] = float(saved[i][j] + s * dirs[i][j]);
  };
  shift(eps);
  const double lp = loss();
  shift(-eps);
  const double lm = loss();
  shift(0.0);
  r.fd = (lp - lm) / (2.0 * eps);
  return r;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// max |a - b| / (atol + rtol·|b|) over elements: <= 1 means within tolerance.
inline double tol_ratio(const float* a, const double* b, size_t n, double atol, double rtol) {
  double worst = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double e = std::abs(double(a[i]) - b[i]) / (atol + rtol * std::abs(b[i]));
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

}  // namespace longctx::test
