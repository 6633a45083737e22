// flash_fwd_wgmma.cu — the forward of flash_fwd.cu on Hopper warpgroup MMAs (sm_90a).
//   Same math, shapes and outputs as flash_fwd.cu (see there). Block = 2 warpgroups × 64 query
//   rows; S = Q·Kᵀ by wgmma m64n64k16 with Q and K read from 128B-swizzled shared memory through
//   descriptors; P stays in registers and O += P·V by wgmma m64n{HS}k16 with V read transposed
//   (MN-major) from shared memory. K/V tiles of 64 keys double-buffered by cp.async. Two blocks
//   per SM (99 registers at HS=64, 127 at HS=128, no spills) overlap one's softmax with the
//   other's MMAs. The loop is lean (docs/PERFORMANCE.md, v12: 229 -> 350 TFLOP/s at HS=64): K/V
//   loads by a TileLoader, descriptors made once and moved by constants, one edge branch per tile.
//   Tried and dropped: three K/V buffers with tile t's P·V left in flight under tile t+1's S
//   (ptxas serialized the wgmmas, C7515).
//   Limits: HS 64 or 128; sm_90a (the launcher falls back to the mma.sync kernel elsewhere).
#include <cuda_runtime.h>

#include <cmath>

#include "flash_common.cuh"
#include "wgmma.cuh"

namespace longctx::gpu {

namespace {

constexpr int BC = 64, WG = 2, THREADS = WG * 128, BR = WG * 64;

struct Args {
  const __nv_bfloat16 *q, *k, *v;
  __nv_bfloat16* o;
  float *o32, *lse;
  FlashShape s;
  float scale_log2;
  bool merge;  // (o32, lse) hold a running partial: merge into them (flash_fwd)
};

// One tile's online softmax for this thread's two rows (row[hr]): masks the scores where the
// tile crosses the end of the keys or the diagonal, turns sc into P = exp2(S·scale_log2 - m)
// in place, updates the running max m and sum l, and returns each row's rescale of O in corr.
// sc[4·nt + e] is (row g + 8·(e/2), key 8·nt + 2c + e%2), as mma.sync's C.
// kEdge: the tile crosses the end of the keys or the diagonal (the caller branches once per tile).
template <bool kEdge>
__device__ __forceinline__ void online_softmax(float (&sc)[32], float (&m)[2], float (&l)[2], float (&corr)[2],
                                               const FlashShape& s, float scale_log2, int t,
                                               const int64_t (&row)[2], int c) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float mx = -INFINITY;  // on raw scores: the scale is positive, so the max commutes with it
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = sc[4 * nt + 2 * hr + e];
        if constexpr (kEdge) {
          const int64_t j = int64_t(t) * BC + nt * 8 + 2 * c + e;
          if (j >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + j > s.q_pos0 + row[hr])) x = -INFINITY;
        }
        mx = fmaxf(mx, x);
      }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
    const float m_new = fmaxf(m[hr], mx * scale_log2), m_use = m_new == -INFINITY ? 0.f : m_new;
    corr[hr] = exp2f(m[hr] - m_use);
    m[hr] = m_new;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = sc[4 * nt + 2 * hr + e];
        x = exp2f(fmaf(x, scale_log2, -m_use));  // scale and shift in one instruction
        sum += x;
      }
    l[hr] = l[hr] * corr[hr] + sum;
  }
}

__device__ __forceinline__ void online_softmax(float (&sc)[32], float (&m)[2], float (&l)[2], float (&corr)[2],
                                               const FlashShape& s, float scale_log2, int t, int64_t q0,
                                               const int64_t (&row)[2], int c) {
  const int64_t tile_last = int64_t(t + 1) * BC - 1;
  if (tile_last >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + tile_last > s.q_pos0 + q0))
    online_softmax<true>(sc, m, l, corr, s, scale_log2, t, row, c);
  else
    online_softmax<false>(sc, m, l, corr, s, scale_log2, t, row, c);
}

// P (bf16) as the A fragments of O += P·V: 16 keys per k-step.
__device__ __forceinline__ void pack_p(const float (&sc)[32], uint32_t (&pa)[BC / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < BC / 16; ++kk)
#pragma unroll
    for (int i = 0; i < 4; ++i) pa[kk][i] = pack_bf16(sc[8 * kk + 2 * i], sc[8 * kk + 2 * i + 1]);
}

// S (64 x 64 per warpgroup) = Q Kᵀ over HS/16 k-steps; k-step kk is 32 bytes into panel kk/4.
// Descriptors K-major: dQw = smem_desc(Qw, 16, 1024), dKt = smem_desc(Kt, 16, 1024).
template <int HS>
__device__ __forceinline__ void issue_s(float (&sc)[32], uint64_t dQw, uint64_t dKt) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < HS / 16; ++kk)
    wgmma_ss_n64(sc, desc_add(dQw, (kk / 4) * BR * 128 + (kk % 4) * 32),
                 desc_add(dKt, (kk / 4) * BC * 128 + (kk % 4) * 32), kk > 0);
  wgmma_commit();
}

// O += P V: P as register A fragments, V transposed (MN-major, dVt = smem_desc(Vt, BC * 128,
// 1024)) from smem. One commit group.
template <int HS>
__device__ __forceinline__ void issue_pv(float* o, const uint32_t (&pa)[BC / 16][4], uint64_t dVt) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < BC / 16; ++kk) {
    const uint64_t dv = desc_add(dVt, kk * 16 * 128);
    if constexpr (HS == 128) wgmma_rs_n128(o, pa[kk], dv);
    else wgmma_rs_n64(o, pa[kk], dv);
  }
  wgmma_commit();
}

// O, lse of this thread's two rows (normalised by the row sums); with a.merge, merged into the
// running (o32, lse) instead (every lane of a row reads its old lse before lane c = 0 writes it).
template <int HS>
__device__ __forceinline__ void store_o(const float* o, const float (&m)[2], const float (&l)[2], const Args& a,
                                        const int64_t (&row)[2], int64_t b, int64_t h, int c) {
  const FlashShape& s = a.s;
  float old[2] = {-INFINITY, -INFINITY};
  if (a.merge) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr)
      if (row[hr] < s.Tq) old[hr] = a.lse[(b * s.Tq + row[hr]) * s.NH + h];
    __syncwarp();
  }
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float L = l[hr];
    L += __shfl_xor_sync(0xffffffff, L, 1);
    L += __shfl_xor_sync(0xffffffff, L, 2);
    if (row[hr] >= s.Tq) continue;
    const float inv = L > 0.f ? 1.f / L : 0.f, lse = L > 0.f ? (m[hr] + log2f(L)) * 0.69314718056f : -INFINITY;
    const int64_t orow = b * s.q_sb + row[hr] * s.q_st + h * s.q_sh;
    float* o32 = a.o32 + ((b * s.Tq + row[hr]) * s.NH + h) * HS + 2 * c;
    float* lse_at = a.lse + (b * s.Tq + row[hr]) * s.NH + h;
    if (a.merge) {
      if (lse == -INFINITY) continue;  // the row saw no key of this block: unchanged
      const MergeWeights w = merge_weights(old[hr], lse);
#pragma unroll
      for (int j = 0; j < HS / 8; ++j) {
        float2* p = reinterpret_cast<float2*>(o32 + j * 8);
        *p = merge_o(*p, o[4 * j + 2 * hr] * inv, o[4 * j + 2 * hr + 1] * inv, w);
      }
      if (c == 0) *lse_at = w.lse;
      continue;
    }
#pragma unroll
    for (int j = 0; j < HS / 8; ++j) {
      const float x0 = o[4 * j + 2 * hr] * inv, x1 = o[4 * j + 2 * hr + 1] * inv;
      if (a.o) *reinterpret_cast<__nv_bfloat162*>(a.o + orow + j * 8 + 2 * c) = __floats2bfloat162_rn(x0, x1);
      if (a.o32) *reinterpret_cast<float2*>(o32 + j * 8) = make_float2(x0, x1);
    }
    if (c == 0) *lse_at = lse;
  }
}

// S, softmax and P·V of each tile in turn. Two blocks per SM: at HS=128 21% faster than one
// (docs/PERFORMANCE.md, v5); at HS=64 the kernel needs only 114 registers. (A software-pipelined
// HS=64 variant, the next tile's S issued before this tile's softmax, needed 184 registers, so
// one block per SM, and ran at 164-171 TFLOP/s against this kernel's 231: v10.)
template <int HS>
__global__ void __launch_bounds__(THREADS, 2) flash_fwd_wgmma_kernel(const Args a) {
  extern __shared__ unsigned char smem_raw[];
  // Descriptors assume 1024-byte aligned 8-row groups.
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(align1024(smem_raw));
  __nv_bfloat16* Ks = Qs + BR * HS;      // [2][BC x HS]
  __nv_bfloat16* Vs = Ks + 2 * BC * HS;  // [2][BC x HS]

  const FlashShape& s = a.s;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x & 31;
  const int g = lane / 4, c = lane % 4;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, kvh = h / (s.NH / s.NKV), q0 = qt * BR;
  const __nv_bfloat16* qb = a.q + b * s.q_sb + h * s.q_sh;
  const __nv_bfloat16* kb = a.k + b * s.k_sb + kvh * s.k_sh;
  const __nv_bfloat16* vb = a.v + b * s.k_sb + kvh * s.k_sh;
  const int ntiles = int((visible_key_end(s, q0, BR) + BC - 1) / BC);  // tiles any row may see

  load_sw128<BR, HS, THREADS>(Qs, qb, s.q_st, q0, s.Tq);
  if (ntiles > 0) {
    load_sw128<BC, HS, THREADS>(Ks, kb, s.k_st, 0, s.Tk);
    load_sw128<BC, HS, THREADS>(Vs, vb, s.k_st, 0, s.Tk);
  }
  cp_async_commit();

  float o[HS / 2] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int64_t row[2] = {q0 + wg * 64 + warp * 16 + g, q0 + wg * 64 + warp * 16 + g + 8};
  // Descriptors: this warpgroup's 64 rows of Q in each panel; K and V of buffer 0 (buffer 1 is
  // BC * HS * 2 bytes further).
  const uint64_t dQw = smem_desc(Qs + wg * 64 * 64, 16, 1024);
  const uint64_t dK0 = smem_desc(Ks, 16, 1024), dV0 = smem_desc(Vs, BC * 128, 1024);
  const TileLoader<BC, HS, THREADS> load_kv(s.k_st);

  for (int t = 0; t < ntiles; ++t) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();
    const uint32_t slot = (t & 1) * BC * HS * 2;
    if (t + 1 < ntiles) {
      load_kv(Ks + ((t + 1) & 1) * BC * HS, kb, int64_t(t + 1) * BC, s.Tk);
      load_kv(Vs + ((t + 1) & 1) * BC * HS, vb, int64_t(t + 1) * BC, s.Tk);
    }
    cp_async_commit();

    float sc[32], corr[2];
    issue_s<HS>(sc, dQw, desc_add(dK0, slot));
    wgmma_wait0();
    online_softmax(sc, m, l, corr, s, a.scale_log2, t, q0, row, c);
    // Once a row's maximum settles, corr is 1: skip the rescale when the whole warp agrees (HS=128:
    // +3%; at HS=64 the vote cost more than it saved, -4%: docs/PERFORMANCE.md v8).
    if (HS == 64 || __any_sync(0xffffffff, corr[0] != 1.f || corr[1] != 1.f)) {
#pragma unroll
      for (int j = 0; j < HS / 8; ++j)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) o[4 * j + 2 * hr] *= corr[hr], o[4 * j + 2 * hr + 1] *= corr[hr];
    }
    uint32_t pa[BC / 16][4];  // all A fragments ready before the first wgmma reads any
    pack_p(sc, pa);
    issue_pv<HS>(o, pa, desc_add(dV0, slot));
    wgmma_wait0();
  }
  cp_async_wait<0>();
  store_o<HS>(o, m, l, a, row, b, h, c);
}

template <int HS, typename Kernel>
void launch(Kernel kernel, size_t smem, const Args& a, cudaStream_t st) {
  static bool configured = false;
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    configured = true;
  }
  const dim3 grid(unsigned((a.s.Tq + BR - 1) / BR), unsigned(a.s.NH), unsigned(a.s.B));
  kernel<<<grid, THREADS, smem, st>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Called by flash_fwd on sm_90 devices (see flash_fwd.cu).
void flash_fwd_wgmma(const FlashShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                     uint16_t* o, float* o32, float* lse, void* stream, bool merge) {
  Args a{reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k),
         reinterpret_cast<const __nv_bfloat16*>(v), reinterpret_cast<__nv_bfloat16*>(o), o32, lse, s,
         float(1.4426950408889634 / std::sqrt(double(s.HS))), merge};
  auto st = static_cast<cudaStream_t>(stream);
  const size_t smem = size_t(BR + 4 * BC) * s.HS * sizeof(__nv_bfloat16) + 1024;
  if (s.HS == 128) launch<128>(flash_fwd_wgmma_kernel<128>, smem, a, st);
  else launch<64>(flash_fwd_wgmma_kernel<64>, smem, a, st);
}

}  // namespace longctx::gpu
