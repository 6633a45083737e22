// flash_bwd_wgmma.cu — the attention backward on Hopper warpgroup MMAs (sm_90a), 5 matmuls.
//   Same math and contract as flash_bwd.cu (see there): P = exp(S·scale - lse), dV += Pᵀ·dO,
//   dP = dO·Vᵀ, dS = P∘(dP - delta), dK += dSᵀ·Q·scale, dQ += dS·K·scale.
//   One block owns BN = 128 keys of one K/V head (2 warpgroups × 64 keys) and walks every query
//   tile (BM = 64 rows) of every query head of its group, double-buffering Q, dO, lse and delta.
//   Per query tile and warpgroup (64 keys):
//     Sᵀ  = K_w·Qᵀ    wgmma m64n64,  K and Q from swizzled smem (K-major)
//     dPᵀ = V_w·dOᵀ   wgmma m64n64,  issued with Sᵀ; Pᵀ is computed while it runs
//     dV += Pᵀ·dO     wgmma m64n{HS}, Pᵀ from registers, dO MN-major;   dSᵀ computed while it runs
//     dK += dSᵀ·Q     wgmma m64n{HS}, dSᵀ from registers, Q MN-major; dSᵀ also stored to smem
//     dQ  = dS·K      wgmma m64n64 with both operands MN-major (dS read through its transpose):
//                     HS=128: warpgroup w computes dQ's columns [64w, 64w+64) over all 128 keys;
//                     HS=64: each warpgroup its own 64 keys' share of all 64 columns.
//   dQ is added to global memory with fp32 atomics (float2), so the order of the additions, and the
//   last bits of dQ, vary from run to run: this is the fast, non-deterministic kernel; flash_bwd.cu
//   is the deterministic one (FA2's and cuDNN's backward are also atomic).
//   Saved tensors read: Q, K, V, dO (bf16), lse, delta (fp32). Shared memory at HS=128: K, V 32 KB
//   each, Q and dO 2 × 16 KB each, dSᵀ 16 KB: 145 KB, one block (8 warps) per SM.
//   Limits: HS 64 or 128; sm_90a only (flash_bwd falls back to flash_bwd.cu elsewhere).
#include <cuda_runtime.h>

#include "flash_common.cuh"
#include "wgmma.cuh"

namespace longctx::gpu {

namespace {

constexpr int BN = 128, BM = 64, THREADS = 256;

// acc (64 x HS) += A · B over 64 k-rows: A as 4 register fragments (16 k each, from the C layout
// of an m64n64 wgmma), B a swizzled smem tile of BM = 64 rows x HS read MN-major. One commit group.
template <int HS>
__device__ __forceinline__ void wgmma_rs_k64(float* acc, const uint32_t (&frag)[4][4], const __nv_bfloat16* tile) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const uint64_t db = smem_desc(tile + kk * 16 * 64, BM * 128, 1024);
    if constexpr (HS == 128) wgmma_rs_n128(acc, frag[kk], db);
    else wgmma_rs_n64(acc, frag[kk], db);
  }
  wgmma_commit();
}

template <int HS>
__global__ void __launch_bounds__(THREADS, 1) flash_bwd_wgmma_kernel(const BwdArgs a) {
  constexpr int DN = HS / 2;  // dK/dV accumulator floats per thread (64 x HS over 128 threads)
  extern __shared__ unsigned char smem_raw[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  __nv_bfloat16* Vs = Ks + BN * HS;
  __nv_bfloat16* Qs = Vs + BN * HS;      // [2][BM x HS]
  __nv_bfloat16* Os = Qs + 2 * BM * HS;  // [2][BM x HS] (dO)
  __nv_bfloat16* Ss = Os + 2 * BM * HS;  // dSᵀ: BN keys x BM queries, one 64-column panel
  float* Ls = reinterpret_cast<float*>(Ss + BN * BM);  // [2][BM] lse·log2(e), +inf for empty rows
  float* Es = Ls + 2 * BM;                             // [2][BM] delta

  const FlashShape& s = a.s;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x & 31;
  const int g = lane / 4, c = lane % 4;
  const int64_t k0 = int64_t(blockIdx.x) * BN, kvh = blockIdx.y, b = blockIdx.z;
  const int64_t group = s.NH / s.NKV;
  load_sw128<BN, HS, THREADS>(Ks, a.k + b * s.k_sb + kvh * s.k_sh, s.k_st, k0, s.Tk);
  load_sw128<BN, HS, THREADS>(Vs, a.v + b * s.k_sb + kvh * s.k_sh, s.k_st, k0, s.Tk);

  // Query tiles that can see a key of this block: from the first query at or after key k0.
  int64_t qt0 = 0;
  if (s.mask == Mask::kCausal) qt0 = max64(0, s.k_pos0 + k0 - s.q_pos0) / BM;
  const int64_t nqt = (s.Tq + BM - 1) / BM, per_head = nqt > qt0 ? nqt - qt0 : 0;
  const int64_t steps = per_head * group;  // (query head, query tile) pairs
  auto head_of = [&](int64_t i) { return kvh * group + i / per_head; };
  auto q0_of = [&](int64_t i) { return (qt0 + i % per_head) * BM; };

  // Step i's Q and dO tiles by cp.async; its lse and delta rows through registers (strided in
  // memory), stored to shared memory by store_rows at the end of the step before.
  auto load_tiles = [&](int64_t i, int buf) {
    const int64_t off = b * s.q_sb + head_of(i) * s.q_sh;
    load_sw128<BM, HS, THREADS>(Qs + buf * BM * HS, a.q + off, s.q_st, q0_of(i), s.Tq);
    load_sw128<BM, HS, THREADS>(Os + buf * BM * HS, a.dout + off, s.q_st, q0_of(i), s.Tq);
  };
  auto load_row = [&](int64_t i) {  // threads [0, 128): lse (first 64) or delta (next 64) of row
    const int64_t row = q0_of(i) + (threadIdx.x & 63);
    if (row >= s.Tq) return threadIdx.x < 64 ? INFINITY : 0.f;
    const int64_t at = (b * s.Tq + row) * s.NH + head_of(i);
    if (threadIdx.x >= 64) return a.delta[at];
    const float L = a.lse[at];
    return L == -INFINITY ? INFINITY : L * 1.4426950408889634f;  // a row that saw nothing: P = 0
  };
  auto store_row = [&](float x, int buf) {
    if (threadIdx.x < 128) (threadIdx.x < 64 ? Ls : Es)[buf * BM + (threadIdx.x & 63)] = x;
  };

  if (steps > 0) {
    load_tiles(0, 0);
    if (threadIdx.x < 128) store_row(load_row(0), 0);
  }
  cp_async_commit();

  float dk[DN] = {}, dv[DN] = {};
  const __nv_bfloat16* Kw = Ks + wg * 64 * 64;  // this warpgroup's 64 keys in each panel
  const __nv_bfloat16* Vw = Vs + wg * 64 * 64;
  for (int64_t i = 0; i < steps; ++i) {
    const int buf = int(i & 1);
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();
    float next_row = 0.f;
    if (i + 1 < steps) {
      load_tiles(i + 1, buf ^ 1);
      if (threadIdx.x < 128) next_row = load_row(i + 1);
    }
    cp_async_commit();
    const __nv_bfloat16* Qt = Qs + buf * BM * HS;
    const __nv_bfloat16* Ot = Os + buf * BM * HS;
    const float* Lt = Ls + buf * BM;
    const float* Et = Es + buf * BM;
    const int64_t h = head_of(i), q0 = q0_of(i);

    // Sᵀ and dPᵀ (64 keys x 64 queries per warpgroup): k-step kk is 32 bytes into panel kk/4.
    float st[32], dpt[32];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HS / 16; ++kk)
      wgmma_ss_n64(st, smem_desc(Kw + (kk / 4) * BN * 64 + (kk % 4) * 16, 16, 1024),
                   smem_desc(Qt + (kk / 4) * BM * 64 + (kk % 4) * 16, 16, 1024), kk > 0);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < HS / 16; ++kk)
      wgmma_ss_n64(dpt, smem_desc(Vw + (kk / 4) * BN * 64 + (kk % 4) * 16, 16, 1024),
                   smem_desc(Ot + (kk / 4) * BM * 64 + (kk % 4) * 16, 16, 1024), kk > 0);
    wgmma_commit();
    wgmma_wait<1>();

    // Pᵀ: st[4·nt + e] is (key 16·warp + g + 8·(e/2), query 8·nt + 2c + e%2), as mma.sync's C.
    // Masks only where the block crosses the end of the keys or the diagonal.
    const bool edge = k0 + BN > s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + k0 + BN - 1 > s.q_pos0 + q0);
    const int64_t key0 = k0 + wg * 64 + warp * 16 + g;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * c + (e & 1);
        float p = exp2f(fmaf(st[4 * nt + e], a.scale_log2, -Lt[col]));
        if (edge) {
          const int64_t j = key0 + 8 * (e >> 1);
          if (j >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + j > s.q_pos0 + q0 + col)) p = 0.f;
        }
        st[4 * nt + e] = p;
      }
    uint32_t pa[4][4];  // Pᵀ as A fragments: 16 queries per k-step
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) pa[kk][r] = pack_bf16(st[8 * kk + 2 * r], st[8 * kk + 2 * r + 1]);
    wgmma_rs_k64<HS>(dv, pa, Ot);  // dV += Pᵀ·dO
    wgmma_wait<1>();  // dPᵀ done (dV may still run)

    // dSᵀ = Pᵀ∘(dPᵀ - delta): to registers for dK and to shared memory for dQ.
    uint32_t sa[4][4];
    __nv_bfloat16* Sw = Ss + (wg * 64 + warp * 16 + g) * 64;  // row g of this warp; +8 rows = +512
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int col = nt * 8 + 2 * c;
        const uint32_t x = pack_bf16(st[4 * nt + 2 * hr] * (dpt[4 * nt + 2 * hr] - Et[col]),
                                     st[4 * nt + 2 * hr + 1] * (dpt[4 * nt + 2 * hr + 1] - Et[col + 1]));
        sa[nt / 2][(nt % 2) * 2 + hr] = x;
        const int r = warp * 16 + g + 8 * hr;  // swizzle by the row within its 8-row group
        *reinterpret_cast<uint32_t*>(Sw + hr * 8 * 64 + (((nt ^ (r & 7))) << 3) + 2 * c) = x;
      }
    wgmma_rs_k64<HS>(dk, sa, Qt);  // dK += dSᵀ·Q
    fence_proxy_async();
    __syncthreads();  // all of dSᵀ is in shared memory

    // dQ (64 queries x 64 columns) = dS·K over this warpgroup's share (see the header).
    constexpr int KKN = HS == 128 ? 8 : 4;  // k-steps of 16 keys
    const int kk_first = HS == 128 ? 0 : wg * 4, panel = HS == 128 ? wg : 0;
    float dq[32];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < KKN; ++kk) {
      const int ks = kk_first + kk;
      wgmma_ss_n64_tt(dq, smem_desc(Ss + ks * 16 * 64, BN * 128, 1024),
                      smem_desc(Ks + panel * BN * 64 + ks * 16 * 64, BN * 128, 1024), kk > 0);
    }
    wgmma_commit();
    wgmma_wait0();
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int64_t row = q0 + warp * 16 + g + 8 * hr;
      if (row >= s.Tq) continue;
      float* dst = a.dq + ((b * s.Tq + row) * s.NH + h) * HS + panel * 64 + 2 * c;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
        atomicAdd(reinterpret_cast<float2*>(dst + nt * 8),
                  make_float2(dq[4 * nt + 2 * hr] * a.scale, dq[4 * nt + 2 * hr + 1] * a.scale));
    }
    if (i + 1 < steps) store_row(next_row, buf ^ 1);
  }
  cp_async_wait<0>();

  // dK, dV rows of this warpgroup: read-modify-write (this block owns them).
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int64_t key = k0 + wg * 64 + warp * 16 + g + 8 * hr;
    if (key >= s.Tk) continue;
    const int64_t at = ((b * s.Tk + key) * s.NKV + kvh) * HS + 2 * c;
#pragma unroll
    for (int j = 0; j < DN / 4; ++j) {
      float2* pk = reinterpret_cast<float2*>(a.dk + at + j * 8);
      float2* pv = reinterpret_cast<float2*>(a.dv + at + j * 8);
      float2 x = *pk, y = *pv;
      x.x += dk[4 * j + 2 * hr] * a.scale, x.y += dk[4 * j + 2 * hr + 1] * a.scale;
      y.x += dv[4 * j + 2 * hr], y.y += dv[4 * j + 2 * hr + 1];
      *pk = x, *pv = y;
    }
  }
}

template <int HS>
void launch(const BwdArgs& a, cudaStream_t st) {
  const size_t smem = size_t(2 * BN + 4 * BM) * HS * 2 + size_t(BN * BM) * 2 + 4 * BM * sizeof(float) + 1024;
  static bool configured = false;
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_wgmma_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    configured = true;
  }
  const dim3 grid(unsigned((a.s.Tk + BN - 1) / BN), unsigned(a.s.NKV), unsigned(a.s.B));
  flash_bwd_wgmma_kernel<HS><<<grid, THREADS, smem, st>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Called by flash_bwd on sm_90 devices (see flash_bwd.cu).
void flash_bwd_wgmma(const BwdArgs& a, cudaStream_t stream) {
  if (a.s.HS == 128) launch<128>(a, stream);
  else launch<64>(a, stream);
}

}  // namespace longctx::gpu
