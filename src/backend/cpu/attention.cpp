// attention.cpp — blockwise (flash) attention, the CPU fp32 reference of the ring-step interface.
//   fwd: o = softmax(q k^T * scale + mask) v per head, online softmax over key tiles of BK rows;
//        q (B,Tq,NH,HS), k/v (B,Tk,NKV,HS) -> o (B,Tq,NH,HS), lse (B,Tq,NH). Merge mode folds the
//        block into an existing (o, lse) exactly. No Tq x Tk buffer: one BQ x BK tile per thread.
//   bwd: recomputes each tile's probabilities from lse: P = exp(S - lse); dV += P^T dO;
//        dS = P (dO v^T - delta); dQ += dS k scale; dK += dS^T q scale. Saved: q, k, v, o, lse.
//   Causal tiles wholly above the diagonal are skipped. Threads split (b, head) work; each output
//   element is summed in one fixed order, so results are deterministic.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "longctx/common.h"
#include <omp.h>

#include "longctx/ops.h"

namespace longctx::cpu {

namespace {
constexpr int64_t BQ = 64, BK = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void check_shape(const AttnShape& s) {
  CHECK(s.B > 0 && s.Tq > 0 && s.Tk > 0 && s.HS > 0, "attention: empty shape B={} Tq={} Tk={} HS={}",
        s.B, s.Tq, s.Tk, s.HS);
  CHECK(s.NKV > 0 && s.NH % s.NKV == 0, "attention: NKV = {} must divide NH = {}", s.NKV, s.NH);
}

// Last key index (exclusive) visible to query row t: all of them unless causal.
inline int64_t key_end(const AttnShape& s, int64_t t) {
  if (!s.causal) return s.Tk;
  const int64_t last = s.q_pos0 + t - s.k_pos0;  // key index of the same global position
  return last < 0 ? 0 : (last + 1 < s.Tk ? last + 1 : s.Tk);
}
}  // namespace

size_t attention_scratch_bytes(int64_t Tk, int64_t HS) {
  const int64_t per_thread = (BQ * HS + BK) + (2 * Tk * HS + HS);  // forward's and backward's, both kept
  return size_t(omp_get_max_threads()) * size_t(per_thread) * sizeof(float);
}

void attention_fwd(float* o, float* lse, const float* q, const float* k, const float* v,
                   const AttnShape& s, bool merge) {
  check_shape(s);
  const int64_t HS = s.HS, group = s.NH / s.NKV, nqb = (s.Tq + BQ - 1) / BQ;
  const float scale = 1.0f / std::sqrt(float(HS));
#pragma omp parallel
  {
    static thread_local std::vector<float> acc, S;  // per thread, grown once, reused every call
    acc.resize(size_t(BQ * HS)), S.resize(size_t(BK));
    float mrow[BQ], lrow[BQ];
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.NH; ++h)
        for (int64_t qb = 0; qb < nqb; ++qb) {
          const int64_t t0 = qb * BQ, t1 = std::min(s.Tq, t0 + BQ), kvh = h / group;
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int64_t i = 0; i < t1 - t0; ++i) mrow[i] = kNegInf, lrow[i] = 0.0f;
          const int64_t kend_blk = key_end(s, t1 - 1);  // keys any row of this tile may see
          for (int64_t s0 = 0; s0 < kend_blk; s0 += BK) {
            for (int64_t t = t0; t < t1; ++t) {
              const int64_t i = t - t0, s1 = std::min(key_end(s, t), s0 + BK);
              if (s1 <= s0) continue;  // this row sees nothing of the tile
              const float* qr = q + ((b * s.Tq + t) * s.NH + h) * HS;
              float mx = mrow[i];
              for (int64_t j = s0; j < s1; ++j) {
                S[j - s0] = dot(qr, k + ((b * s.Tk + j) * s.NKV + kvh) * HS, HS) * scale;
                mx = std::max(mx, S[j - s0]);
              }
              const float corr = std::exp(mrow[i] - mx);  // exp(-inf) = 0 on the first tile
              float* a = acc.data() + i * HS;
              float l = lrow[i] * corr;
              for (int64_t d = 0; d < HS; ++d) a[d] *= corr;
              for (int64_t j = s0; j < s1; ++j) {
                const float p = std::exp(S[j - s0] - mx);
                l += p;
                axpy(a, p, v + ((b * s.Tk + j) * s.NKV + kvh) * HS, HS);
              }
              mrow[i] = mx, lrow[i] = l;
            }
          }
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t i = t - t0;
            float* orow = o + ((b * s.Tq + t) * s.NH + h) * HS;
            float& L = lse[(b * s.Tq + t) * s.NH + h];
            const float* a = acc.data() + i * HS;
            const float blk = lrow[i] > 0.0f ? mrow[i] + std::log(lrow[i]) : kNegInf;
            if (!merge) {
              L = blk;
              for (int64_t d = 0; d < HS; ++d) orow[d] = lrow[i] > 0.0f ? a[d] / lrow[i] : 0.0f;
            } else if (blk != kNegInf) {
              // (o, L) and (a/l, blk) are softmax-weighted means over disjoint key sets.
              const float mx = std::max(L, blk), tot = std::exp(L - mx) + std::exp(blk - mx);
              const float L2 = mx + std::log(tot);
              const float w_old = std::exp(L - L2), w_blk = std::exp(blk - L2) / lrow[i];
              for (int64_t d = 0; d < HS; ++d) orow[d] = orow[d] * w_old + a[d] * w_blk;
              L = L2;
            }
          }
        }
  }
}

void attention_delta(float* delta, const float* o, const float* dout, const AttnShape& s) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.Tq; ++t)
      for (int64_t h = 0; h < s.NH; ++h) {
        const int64_t row = ((b * s.Tq + t) * s.NH + h) * s.HS;
        delta[(b * s.Tq + t) * s.NH + h] = dot(o + row, dout + row, s.HS);
      }
}

void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* q,
                   const float* k, const float* v, const float* lse, const float* delta,
                   const AttnShape& s, bool accumulate_dkv) {
  check_shape(s);
  const int64_t HS = s.HS, group = s.NH / s.NKV;
  const float scale = 1.0f / std::sqrt(float(HS));
  const int64_t kmax = key_end(s, s.Tq - 1);  // keys any query row sees (key_end grows with t)
  // One thread owns a (b, kv head): it writes dk/dv of that head and dq of the group's heads.
  // The sums run in thread-private buffers, added to the outputs once: the dk/dv rows of
  // neighbouring kv heads (and dq rows of neighbouring heads) share cache lines at their edges,
  // and updating them in the inner loop from two threads made 2 threads 2x slower than one.
#pragma omp parallel
  {
    static thread_local std::vector<float> kv_acc, q_acc;  // grown once per thread, reused
    kv_acc.resize(size_t(2 * kmax * HS)), q_acc.resize(size_t(HS));
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t kvh = 0; kvh < s.NKV; ++kvh) {
        float *dk_acc = kv_acc.data(), *dv_acc = kv_acc.data() + kmax * HS;
        std::fill(kv_acc.begin(), kv_acc.begin() + 2 * kmax * HS, 0.0f);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int64_t t = 0; t < s.Tq; ++t) {
            const float L = lse[(b * s.Tq + t) * s.NH + h];
            const int64_t kend = key_end(s, t);
            if (kend == 0 || L == kNegInf) continue;
            const int64_t row = ((b * s.Tq + t) * s.NH + h) * HS;
            const float *qr = q + row, *dor = dout + row;
            const float D = delta[(b * s.Tq + t) * s.NH + h];
            std::fill(q_acc.begin(), q_acc.end(), 0.0f);
            for (int64_t j = 0; j < kend; ++j) {
              const int64_t kr = ((b * s.Tk + j) * s.NKV + kvh) * HS;
              const float p = std::exp(dot(qr, k + kr, HS) * scale - L);
              const float ds = p * (dot(dor, v + kr, HS) - D) * scale;
              axpy(dv_acc + j * HS, p, dor, HS);
              axpy(q_acc.data(), ds, k + kr, HS);
              axpy(dk_acc + j * HS, ds, qr, HS);
            }
            axpy(dq + row, 1.0f, q_acc.data(), HS);
          }
        for (int64_t j = 0; j < (accumulate_dkv ? kmax : s.Tk); ++j) {
          const int64_t kr = ((b * s.Tk + j) * s.NKV + kvh) * HS;
          if (accumulate_dkv) {
            axpy(dk + kr, 1.0f, dk_acc + j * HS, HS);
            axpy(dv + kr, 1.0f, dv_acc + j * HS, HS);
          } else if (j < kmax) {  // written: the sums, then zeros for the keys no query sees
            std::copy_n(dk_acc + j * HS, HS, dk + kr), std::copy_n(dv_acc + j * HS, HS, dv + kr);
          } else {
            std::fill_n(dk + kr, HS, 0.0f), std::fill_n(dv + kr, HS, 0.0f);
          }
        }
      }
  }
}

}  // namespace longctx::cpu
