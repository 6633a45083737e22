// attention_ref.h — naive softmax attention in double (a Tq×Tk score row per query, fine at test
// sizes): the reference the CPU blockwise kernel and the GPU kernels are tested against.
#pragma once

#include <cmath>
#include <vector>

#include "longctx/ops.h"

namespace longctx::test {

struct Naive {
  std::vector<double> o, lse, dq, dk, dv;
};

// Naive attention in double: o, lse and (given dO) the gradients dq, dk, dv.
inline Naive naive(const cpu::AttnShape& s, const std::vector<float>& q, const std::vector<float>& k,
            const std::vector<float>& v, const std::vector<float>* dout) {
  const int64_t HS = s.HS, group = s.NH / s.NKV;
  const double scale = 1.0 / std::sqrt(double(HS));
  Naive r;
  r.o.assign(s.B * s.Tq * s.NH * HS, 0.0), r.lse.assign(s.B * s.NH * s.Tq, 0.0);
  r.dq.assign(q.size(), 0.0), r.dk.assign(k.size(), 0.0), r.dv.assign(v.size(), 0.0);
  auto Q = [&](int64_t b, int64_t t, int64_t h) { return ((b * s.Tq + t) * s.NH + h) * HS; };
  auto K = [&](int64_t b, int64_t j, int64_t h) { return ((b * s.Tk + j) * s.NKV + h) * HS; };
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.NH; ++h)
      for (int64_t t = 0; t < s.Tq; ++t) {
        const int64_t kv = h / group;
        std::vector<double> sc(s.Tk, -INFINITY), p(s.Tk, 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j < s.Tk; ++j) {
          if (s.causal && s.k_pos0 + j > s.q_pos0 + t) continue;
          double d = 0;
          for (int64_t i = 0; i < HS; ++i) d += double(q[Q(b, t, h) + i]) * k[K(b, j, kv) + i];
          sc[j] = d * scale, mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < s.Tk; ++j) sum += (p[j] = std::isinf(sc[j]) ? 0.0 : std::exp(sc[j] - mx));
        r.lse[(b * s.Tq + t) * s.NH + h] = sum > 0 ? mx + std::log(sum) : -INFINITY;
        if (sum == 0) continue;
        for (int64_t j = 0; j < s.Tk; ++j) p[j] /= sum;
        for (int64_t j = 0; j < s.Tk; ++j)
          for (int64_t i = 0; i < HS; ++i) r.o[Q(b, t, h) + i] += p[j] * v[K(b, j, kv) + i];
        if (!dout) continue;
        const float* g = dout->data() + Q(b, t, h);
        std::vector<double> dp(s.Tk, 0.0);
        double D = 0;
        for (int64_t j = 0; j < s.Tk; ++j) {
          for (int64_t i = 0; i < HS; ++i) dp[j] += double(g[i]) * v[K(b, j, kv) + i];
          D += p[j] * dp[j];
        }
        for (int64_t j = 0; j < s.Tk; ++j) {
          const double ds = p[j] * (dp[j] - D) * scale;
          for (int64_t i = 0; i < HS; ++i) {
            r.dv[K(b, j, kv) + i] += p[j] * g[i];
            r.dq[Q(b, t, h) + i] += ds * k[K(b, j, kv) + i];
            r.dk[K(b, j, kv) + i] += ds * q[Q(b, t, h) + i];
          }
        }
      }
  return r;
}

}  // namespace longctx::test
