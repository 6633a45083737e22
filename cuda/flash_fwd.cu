// flash_fwd.cu — O = softmax(Q·Kᵀ·scale + mask)·V, online softmax, mma.sync bf16 -> fp32.
//   Q/O (B,Tq,NH,HS) and K/V (B,Tk,NKV,HS) bf16 with strides; lse (B,Tq,NH) fp32 (natural log);
//   O as bf16 and/or the fp32 partial (B,Tq,NH,HS) for ring merges, or (merge) the block's result
//   merged into a running fp32 partial in the epilogue (flash_merge's formula, flash_common.cuh).
//   Block = 16·MT·WARPS query rows of one (batch, head); each warp owns 16·MT rows, keeps their
//   S (16·MT x 64) and O (16·MT x HS) in registers and re-reads Q fragments from shared memory;
//   K/V tiles of 64 keys stream through shared memory, double-buffered with cp.async; their
//   fragments are double-buffered in registers (the next ldmatrix in flight during the mma's).
//   Causal: key tiles past the block's last query are never loaded.
//   Saved for backward: lse (and O). Limits: HS 64 or 128 (checked in the launcher); any T.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>

#include "longctx/flash.h"
#include "flash_common.cuh"
#include "mma.cuh"

namespace longctx::gpu {

namespace {

constexpr int BC = 64;  // keys per tile

struct FwdArgs {
  const __nv_bfloat16 *q, *k, *v;
  __nv_bfloat16* o;
  float *o32, *lse;
  FlashShape s;
  float scale_log2;  // softmax scale · log2(e): scores live in the log2 domain
  bool merge;        // (o32, lse) hold a running partial: merge into them (flash_fwd)
};

template <int HS, int WARPS, int MT>
__global__ void __launch_bounds__(WARPS * 32) flash_fwd_kernel(const FwdArgs a) {
  constexpr int BR = 16 * MT * WARPS, THREADS = WARPS * 32, NT = BC / 8, KS = HS / 16, DT = HS / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* Ks = Qs + BR * HS;      // [2][BC][HS]
  __nv_bfloat16* Vs = Ks + 2 * BC * HS;  // [2][BC][HS]

  const FlashShape& s = a.s;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, c = lane % 4;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  const int64_t h = blockIdx.y, b = blockIdx.z, kvh = h / (s.NH / s.NKV);
  const int64_t q0 = qt * BR;
  const __nv_bfloat16* qb = a.q + b * s.q_sb + h * s.q_sh;
  const __nv_bfloat16* kb = a.k + b * s.k_sb + kvh * s.k_sh;
  const __nv_bfloat16* vb = a.v + b * s.k_sb + kvh * s.k_sh;

  const int64_t kend = visible_key_end(s, q0, BR);  // keys any row of the block may see
  const int ntiles = int((kend + BC - 1) / BC);

  load_tile<BR, HS, THREADS>(Qs, qb, s.q_st, q0, s.Tq);
  if (ntiles > 0) {
    load_tile<BC, HS, THREADS>(Ks, kb, s.k_st, 0, s.Tk);
    load_tile<BC, HS, THREADS>(Vs, vb, s.k_st, 0, s.Tk);
  }
  cp_async_commit();

  // Each warp owns MT m-tiles of 16 rows: rows warp·16·MT + 16·mt + g (+8).
  float o[MT][DT][4] = {};
  float m[MT][2], l[MT][2];
  int64_t row[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr)
      m[mt][hr] = -INFINITY, l[mt][hr] = 0.f, row[mt][hr] = q0 + (warp * MT + mt) * 16 + g + 8 * hr;

  for (int t = 0; t < ntiles; ++t) {
    cp_async_wait<0>();
    __syncthreads();  // tile t is in, and every warp is done with the buffer we refill next
    const __nv_bfloat16* Kt = Ks + (t & 1) * BC * HS;
    const __nv_bfloat16* Vt = Vs + (t & 1) * BC * HS;
    if (t + 1 < ntiles) {  // prefetch the next tile into the other buffer
      load_tile<BC, HS, THREADS>(Ks + ((t + 1) & 1) * BC * HS, kb, s.k_st, int64_t(t + 1) * BC, s.Tk);
      load_tile<BC, HS, THREADS>(Vs + ((t + 1) & 1) * BC * HS, vb, s.k_st, int64_t(t + 1) * BC, s.Tk);
    }
    cp_async_commit();

    // S = Q·Kᵀ: Q fragments from shared memory each k-step (registers go to S and O), each K
    // fragment used by MT m-tiles.
    float sc[MT][NT][4] = {};
#pragma unroll
    for (int kk2 = 0; kk2 < KS / 2; ++kk2) {
      uint32_t qa[MT][2][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        load_a<HS>(qa[mt][0], Qs, (warp * MT + mt) * 16, 2 * kk2);
        load_a<HS>(qa[mt][1], Qs, (warp * MT + mt) * 16, 2 * kk2 + 1);
      }
      uint32_t bf[2][4];  // K fragments, the next one loading while the current one multiplies
      load_b_rows<HS>(bf[0], Kt, 0, kk2);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        if (nt + 1 < NT) load_b_rows<HS>(bf[(nt + 1) & 1], Kt, (nt + 1) * 8, kk2);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) mma16816(sc[mt][nt], qa[mt][0], bf[nt & 1][0], bf[nt & 1][1]);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) mma16816(sc[mt][nt], qa[mt][1], bf[nt & 1][2], bf[nt & 1][3]);
      }
    }
    // Scale, mask, online softmax (a row's 64 scores sit in the 4 lanes of a quad).
    // Only tiles that cross the end of the keys or the causal diagonal need masking.
    const int64_t tile_last = int64_t(t + 1) * BC - 1;
    const bool edge = tile_last >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + tile_last > s.q_pos0 + q0);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = sc[mt][nt][2 * hr + e];
            x *= a.scale_log2;
            if (edge) {
              const int64_t j = int64_t(t) * BC + nt * 8 + 2 * c + e;
              if (j >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + j > s.q_pos0 + row[mt][hr])) x = -INFINITY;
            }
            mx = fmaxf(mx, x);
          }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
        const float m_new = fmaxf(m[mt][hr], mx);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
        const float corr = exp2f(m[mt][hr] - m_use);
        m[mt][hr] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = sc[mt][nt][2 * hr + e];
            x = exp2f(x - m_use);
            sum += x;
          }
        l[mt][hr] = l[mt][hr] * corr + sum;
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) o[mt][dt][2 * hr] *= corr, o[mt][dt][2 * hr + 1] *= corr;
      }
    // O += P · V, P straight from the score registers (C layout = A layout).
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      uint32_t pa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pa[mt][0] = pack_bf16(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);
        pa[mt][1] = pack_bf16(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);
        pa[mt][2] = pack_bf16(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);
        pa[mt][3] = pack_bf16(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);
      }
      uint32_t bf[2][4];  // V fragments, double-buffered the same way
      load_b_cols<HS>(bf[0], Vt, kk * 16, 0);
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        if (dt + 2 < DT) load_b_cols<HS>(bf[((dt >> 1) + 1) & 1], Vt, kk * 16, dt + 2);
        const uint32_t* b = bf[(dt >> 1) & 1];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(o[mt][dt], pa[mt], b[0], b[1]);
          mma16816(o[mt][dt + 1], pa[mt], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();

  // Finish: full row sums over the 4 lanes of a row, normalise, write (or merge into the running
  // partial: every lane of a row reads its old lse before lane c = 0 writes it).
  float old[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr)
      old[mt][hr] = a.merge && row[mt][hr] < s.Tq ? a.lse[(b * s.Tq + row[mt][hr]) * s.NH + h] : -INFINITY;
  __syncwarp();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float L = l[mt][hr];
      L += __shfl_xor_sync(0xffffffff, L, 1);
      L += __shfl_xor_sync(0xffffffff, L, 2);
      const int64_t r = row[mt][hr];
      if (r >= s.Tq) continue;
      const float inv = L > 0.f ? 1.f / L : 0.f, lse = L > 0.f ? (m[mt][hr] + log2f(L)) * 0.69314718056f : -INFINITY;
      const int64_t orow = b * s.q_sb + r * s.q_st + h * s.q_sh;
      float* o32 = a.o32 + ((b * s.Tq + r) * s.NH + h) * HS + 2 * c;
      float* lse_at = a.lse + (b * s.Tq + r) * s.NH + h;
      if (a.merge) {
        if (lse == -INFINITY) continue;  // the row saw no key of this block: unchanged
        const MergeWeights w = merge_weights(old[mt][hr], lse);
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
          float2* p = reinterpret_cast<float2*>(o32 + dt * 8);
          *p = merge_o(*p, o[mt][dt][2 * hr] * inv, o[mt][dt][2 * hr + 1] * inv, w);
        }
        if (c == 0) *lse_at = w.lse;
        continue;
      }
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        const float x0 = o[mt][dt][2 * hr] * inv, x1 = o[mt][dt][2 * hr + 1] * inv;
        if (a.o) *reinterpret_cast<__nv_bfloat162*>(a.o + orow + dt * 8 + 2 * c) = __floats2bfloat162_rn(x0, x1);
        if (a.o32) *reinterpret_cast<float2*>(o32 + dt * 8) = make_float2(x0, x1);
      }
      if (c == 0) *lse_at = lse;
    }
}

template <int HS, int WARPS, int MT>
void launch_fwd(const FwdArgs& a, cudaStream_t st) {
  constexpr int BR = 16 * MT * WARPS;
  const size_t smem = size_t(BR + 4 * BC) * HS * sizeof(__nv_bfloat16);
  static bool configured = false;  // per instantiation
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_kernel<HS, WARPS, MT>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    configured = true;
  }
  const dim3 grid(unsigned((a.s.Tq + BR - 1) / BR), unsigned(a.s.NH), unsigned(a.s.B));
  flash_fwd_kernel<HS, WARPS, MT><<<grid, WARPS * 32, smem, st>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool wgmma_available() {
  static const bool ok = [] {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    return major == 9 && minor == 0;
  }();
  return ok;
}

void flash_fwd(const FlashShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
               uint16_t* o, float* o32, float* lse, void* stream, FwdKernel kernel, bool merge) {
  check_flash_shape(s);
  flash_require(o || o32, "flash_fwd: no output (o and o32 are both null)");
  flash_require(!merge || (o32 && !o), "flash_fwd: merge needs the running fp32 partial o32, and no bf16 o");
  check_flash_align(q, 16, "q"), check_flash_align(k, 16, "k"), check_flash_align(v, 16, "v");
  check_flash_align(o, 16, "o"), check_flash_align(o32, 8, "o32"), check_flash_align(lse, 4, "lse");
  if (s.mask == Mask::kSkip) return;
  if (kernel == FwdKernel::kWgmma) flash_require(wgmma_available(), "the wgmma kernel needs an sm_90 GPU");
  if (kernel == FwdKernel::kWgmma || (kernel == FwdKernel::kAuto && wgmma_available())) {
    flash_fwd_wgmma(s, q, k, v, o, o32, lse, stream, merge);
    return;
  }
  FwdArgs a{reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k),
            reinterpret_cast<const __nv_bfloat16*>(v), reinterpret_cast<__nv_bfloat16*>(o), o32, lse, s,
            float(1.4426950408889634 / std::sqrt(double(s.HS))), merge};
  auto st = static_cast<cudaStream_t>(stream);
  // Default: 4 warps of 2 m-tiles (32 query rows) each, so every K/V fragment read from shared
  // memory feeds two mma's. LONGCTX_FLASH_FWD_MT=1 selects v1 (16 rows per warp) for comparison
  // (docs/PERFORMANCE.md).
  static const int mt = [] {
    const char* e = std::getenv("LONGCTX_FLASH_FWD_MT");
    return e && e[0] == '1' ? 1 : 2;
  }();
  if (s.HS == 128) mt == 2 ? launch_fwd<128, 4, 2>(a, st) : launch_fwd<128, 4, 1>(a, st);
  else mt == 2 ? launch_fwd<64, 4, 2>(a, st) : launch_fwd<64, 4, 1>(a, st);
}

}  // namespace longctx::gpu
