// flash_bwd.cu — attention backward from (Q, K, V, dO, LSE, delta), mma.sync bf16 -> fp32.
//   P = exp(S·scale - lse), dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP - delta), dQ = dS·K·scale,
//   dK = dSᵀ·Q·scale. Q/dO (B,Tq,NH,HS), K/V (B,Tk,NKV,HS) bf16 with strides; dq/dk/dv fp32
//   contiguous; dq accumulated (+=) so that ring steps add up, dk/dv accumulated or written
//   (BwdArgs::dkv_add; written: every key row of the block, zeros where no query sees it).
//   Deterministic, no atomics: kernel 1 owns a tile of 16·WARPS keys of one K/V head and walks all
//   query tiles of all query heads of its group (dK, dV); kernel 2 owns 16·WARPS query rows and
//   walks the key tiles (dQ). Both recompute S and dP (7 matmuls instead of 5).
//   Limits: HS 64 or 128; any T.
#include <cuda_runtime.h>

#include <cmath>

#include "flash_common.cuh"
#include "mma.cuh"

namespace longctx::gpu {

namespace {

constexpr int BT = 64;  // the streamed tile: queries (kernel 1) or keys (kernel 2)

// Pack two adjacent 16x8 fp32 C tiles (n-tiles 2kk, 2kk+1) into one bf16 A fragment.
__device__ __forceinline__ void c_to_a(uint32_t* a, const float* c0, const float* c1) {
  a[0] = pack_bf16(c0[0], c0[1]), a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]), a[3] = pack_bf16(c1[2], c1[3]);
}

// dst[col] += scale·acc (or = when !accumulate) for this lane's columns (8·dt + 2·(lane%4), +1)
// of row half hr (C layout).
template <int DT>
__device__ __forceinline__ void add_row(float* dst, const float (&acc)[DT][4], int hr, float scale,
                                        bool accumulate = true) {
  const int c = (threadIdx.x & 31) % 4;
#pragma unroll
  for (int dt = 0; dt < DT; ++dt) {
    float2* p = reinterpret_cast<float2*>(dst + dt * 8 + 2 * c);
    float2 x = accumulate ? *p : make_float2(0.f, 0.f);
    x.x += acc[dt][2 * hr] * scale, x.y += acc[dt][2 * hr + 1] * scale;
    *p = x;
  }
}

// ---- kernel 1: dK, dV for one key tile -------------------------------------------------------
template <int HS, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) flash_bwd_dkdv_kernel(const BwdArgs a) {
  constexpr int BK = 16 * WARPS, THREADS = WARPS * 32, NT = BT / 8, KS = HS / 16, DT = HS / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [BK][HS]
  __nv_bfloat16* Vs = Ks + BK * HS;                                  // [BK][HS]
  __nv_bfloat16* Qs = Vs + BK * HS;                                  // [2][BT][HS]
  __nv_bfloat16* Ds = Qs + 2 * BT * HS;                              // [2][BT][HS] (dO)
  float* Ls = reinterpret_cast<float*>(Ds + 2 * BT * HS);            // [2][BT] lse·log2(e)
  float* Es = Ls + 2 * BT;                                           // [2][BT] delta

  const FlashShape& s = a.s;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, c = lane % 4;
  const int64_t k0 = int64_t(blockIdx.x) * BK, kvh = blockIdx.y, b = blockIdx.z;
  const int64_t group = s.NH / s.NKV;
  load_tile<BK, HS, THREADS>(Ks, a.k + b * s.k_sb + kvh * s.k_sh, s.k_st, k0, s.Tk);
  load_tile<BK, HS, THREADS>(Vs, a.v + b * s.k_sb + kvh * s.k_sh, s.k_st, k0, s.Tk);
  cp_async_commit();

  // Query tiles that can see any key of this tile: from the first query at or after key k0.
  int64_t qt0 = 0;
  if (s.mask == Mask::kCausal) qt0 = max64(0, s.k_pos0 + k0 - s.q_pos0) / BT;
  const int64_t nqt = (s.Tq + BT - 1) / BT;
  const int64_t steps = (nqt > qt0 ? nqt - qt0 : 0) * group;  // (head, query tile) pairs

  auto stage = [&](int64_t i, int buf) {  // queue the loads of pair i into buffer buf
    const int64_t h = kvh * group + i / (nqt - qt0), qt = qt0 + i % (nqt - qt0), r0 = qt * BT;
    const int64_t off = b * s.q_sb + h * s.q_sh;
    load_tile<BT, HS, THREADS>(Qs + buf * BT * HS, a.q + off, s.q_st, r0, s.Tq);
    load_tile<BT, HS, THREADS>(Ds + buf * BT * HS, a.dout + off, s.q_st, r0, s.Tq);
    for (int r = threadIdx.x; r < BT; r += THREADS) {
      const int64_t row = r0 + r;
      const float L = row < s.Tq ? a.lse[(b * s.Tq + row) * s.NH + h] : -INFINITY;
      // Rows past Tq or that saw nothing: +inf makes their probabilities exactly 0.
      Ls[buf * BT + r] = L == -INFINITY ? INFINITY : L * 1.4426950408889634f;
      Es[buf * BT + r] = row < s.Tq ? a.delta[(b * s.Tq + row) * s.NH + h] : 0.f;
    }
  };

  float dk[DT][4] = {}, dv[DT][4] = {};
  const int64_t key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  if (steps > 0) stage(0, 0);
  cp_async_commit();
  for (int64_t i = 0; i < steps; ++i) {
    const int buf = int(i & 1);
    cp_async_wait<0>();
    __syncthreads();
    if (i + 1 < steps) stage(i + 1, buf ^ 1);
    cp_async_commit();
    const __nv_bfloat16* Qt = Qs + buf * BT * HS;
    const __nv_bfloat16* Dt = Ds + buf * BT * HS;
    const float* Lt = Ls + buf * BT;
    const float* Et = Es + buf * BT;
    const int64_t q0 = (qt0 + i % (nqt - qt0)) * BT;

    // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (16 keys x 64 queries per warp).
    float st[NT][4] = {}, dpt[NT][4] = {};
#pragma unroll
    for (int kk2 = 0; kk2 < KS / 2; ++kk2) {
      uint32_t ka0[4], ka1[4], va0[4], va1[4];
      load_a<HS>(ka0, Ks, warp * 16, 2 * kk2);
      load_a<HS>(ka1, Ks, warp * 16, 2 * kk2 + 1);
      load_a<HS>(va0, Vs, warp * 16, 2 * kk2);
      load_a<HS>(va1, Vs, warp * 16, 2 * kk2 + 1);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        uint32_t bq[4], bd[4];
        load_b_rows<HS>(bq, Qt, nt * 8, kk2);
        load_b_rows<HS>(bd, Dt, nt * 8, kk2);
        mma16816(st[nt], ka0, bq[0], bq[1]);
        mma16816(st[nt], ka1, bq[2], bq[3]);
        mma16816(dpt[nt], va0, bd[0], bd[1]);
        mma16816(dpt[nt], va1, bd[2], bd[3]);
      }
    }
    // Pᵀ and dSᵀ in place. Masks only where the tile crosses the end of the keys or the diagonal
    // (int64 index tests per element were the busiest pipe before: docs/PERFORMANCE.md).
    const bool edge = k0 + BK > s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + k0 + BK - 1 > s.q_pos0 + q0);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * c + (e & 1);
        float p = exp2f(st[nt][e] * a.scale_log2 - Lt[col]);
        if (edge) {
          const int64_t j = key[e >> 1], qi = q0 + col;
          if (j >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + j > s.q_pos0 + qi)) p = 0.f;
        }
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - Et[col]);
      }
    // dV += Pᵀ·dO, dK += dSᵀ·Q (k index = the 64 queries).
#pragma unroll
    for (int kk = 0; kk < BT / 16; ++kk) {
      uint32_t pa[4], sa[4];
      c_to_a(pa, st[2 * kk], st[2 * kk + 1]);
      c_to_a(sa, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        uint32_t bd[4], bq[4];
        load_b_cols<HS>(bd, Dt, kk * 16, dt);
        load_b_cols<HS>(bq, Qt, kk * 16, dt);
        mma16816(dv[dt], pa, bd[0], bd[1]);
        mma16816(dv[dt + 1], pa, bd[2], bd[3]);
        mma16816(dk[dt], sa, bq[0], bq[1]);
        mma16816(dk[dt + 1], sa, bq[2], bq[3]);
      }
    }
  }
  cp_async_wait<0>();
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    if (key[hr] >= s.Tk) continue;
    const int64_t base = ((b * s.Tk + key[hr]) * s.NKV + kvh) * HS;
    add_row(a.dk + base, dk, hr, a.scale, a.dkv_add);
    add_row(a.dv + base, dv, hr, 1.f, a.dkv_add);
  }
}

// ---- kernel 2: dQ for one query tile -------------------------------------------------------
template <int HS, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) flash_bwd_dq_kernel(const BwdArgs a) {
  constexpr int BQ = 16 * WARPS, THREADS = WARPS * 32, NT = BT / 8, KS = HS / 16, DT = HS / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [BQ][HS]
  __nv_bfloat16* Ds = Qs + BQ * HS;                                  // [BQ][HS] (dO)
  __nv_bfloat16* Ks = Ds + BQ * HS;                                  // [2][BT][HS]
  __nv_bfloat16* Vs = Ks + 2 * BT * HS;                              // [2][BT][HS]

  const FlashShape& s = a.s;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, c = lane % 4;
  const int64_t qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t kvh = h / (s.NH / s.NKV), q0 = qt * BQ;
  const __nv_bfloat16* kb = a.k + b * s.k_sb + kvh * s.k_sh;
  const __nv_bfloat16* vb = a.v + b * s.k_sb + kvh * s.k_sh;
  const int64_t kend = visible_key_end(s, q0, BQ);  // keys any row of the block may see
  const int ntiles = int((kend + BT - 1) / BT);
  const int64_t off = b * s.q_sb + h * s.q_sh;
  load_tile<BQ, HS, THREADS>(Qs, a.q + off, s.q_st, q0, s.Tq);
  load_tile<BQ, HS, THREADS>(Ds, a.dout + off, s.q_st, q0, s.Tq);
  if (ntiles > 0) {
    load_tile<BT, HS, THREADS>(Ks, kb, s.k_st, 0, s.Tk);
    load_tile<BT, HS, THREADS>(Vs, vb, s.k_st, 0, s.Tk);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[KS][4], df[KS][4];
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) load_a<HS>(qf[kk], Qs, warp * 16, kk), load_a<HS>(df[kk], Ds, warp * 16, kk);
  const int64_t row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float L2[2], E[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const float L = row[hr] < s.Tq ? a.lse[(b * s.Tq + row[hr]) * s.NH + h] : -INFINITY;
    L2[hr] = L == -INFINITY ? INFINITY : L * 1.4426950408889634f;
    E[hr] = row[hr] < s.Tq ? a.delta[(b * s.Tq + row[hr]) * s.NH + h] : 0.f;
  }
  float dq[DT][4] = {};
  for (int t = 0; t < ntiles; ++t) {
    const __nv_bfloat16* Kt = Ks + (t & 1) * BT * HS;
    const __nv_bfloat16* Vt = Vs + (t & 1) * BT * HS;
    if (t + 1 < ntiles) {
      load_tile<BT, HS, THREADS>(Ks + ((t + 1) & 1) * BT * HS, kb, s.k_st, int64_t(t + 1) * BT, s.Tk);
      load_tile<BT, HS, THREADS>(Vs + ((t + 1) & 1) * BT * HS, vb, s.k_st, int64_t(t + 1) * BT, s.Tk);
    }
    cp_async_commit();
    float sc[NT][4] = {}, dp[NT][4] = {};
#pragma unroll
    for (int kk2 = 0; kk2 < KS / 2; ++kk2)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        uint32_t bk[4], bv[4];
        load_b_rows<HS>(bk, Kt, nt * 8, kk2);
        load_b_rows<HS>(bv, Vt, nt * 8, kk2);
        mma16816(sc[nt], qf[2 * kk2], bk[0], bk[1]);
        mma16816(sc[nt], qf[2 * kk2 + 1], bk[2], bk[3]);
        mma16816(dp[nt], df[2 * kk2], bv[0], bv[1]);
        mma16816(dp[nt], df[2 * kk2 + 1], bv[2], bv[3]);
      }
    const int64_t tile_last = int64_t(t + 1) * BT - 1;
    const bool edge = tile_last >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + tile_last > s.q_pos0 + q0);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hr = e >> 1;
        float p = exp2f(sc[nt][e] * a.scale_log2 - L2[hr]);
        if (edge) {
          const int64_t j = int64_t(t) * BT + nt * 8 + 2 * c + (e & 1);
          if (j >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + j > s.q_pos0 + row[hr])) p = 0.f;
        }
        dp[nt][e] = p * (dp[nt][e] - E[hr]);  // dS
      }
    // dQ += dS·K (k index = the 64 keys of the tile).
#pragma unroll
    for (int kk = 0; kk < BT / 16; ++kk) {
      uint32_t sa[4];
      c_to_a(sa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        uint32_t bk[4];
        load_b_cols<HS>(bk, Kt, kk * 16, dt);
        mma16816(dq[dt], sa, bk[0], bk[1]);
        mma16816(dq[dt + 1], sa, bk[2], bk[3]);
      }
    }
    cp_async_wait<0>();
    __syncthreads();
  }
#pragma unroll
  for (int hr = 0; hr < 2; ++hr)
    if (row[hr] < s.Tq) add_row(a.dq + ((b * s.Tq + row[hr]) * s.NH + h) * HS, dq, hr, a.scale);
}

template <int HS, int WARPS>
void launch_bwd(const BwdArgs& a, cudaStream_t st) {
  constexpr int B16 = 16 * WARPS;
  const size_t smem1 = size_t(2 * B16 + 4 * BT) * HS * 2 + 4 * BT * sizeof(float);
  const size_t smem2 = size_t(2 * B16 + 4 * BT) * HS * 2;
  static bool configured = false;
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dkdv_kernel<HS, WARPS>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem1)));
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dq_kernel<HS, WARPS>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem2)));
    configured = true;
  }
  const FlashShape& s = a.s;
  flash_bwd_dkdv_kernel<HS, WARPS><<<dim3(unsigned((s.Tk + B16 - 1) / B16), unsigned(s.NKV), unsigned(s.B)),
                                     WARPS * 32, smem1, st>>>(a);
  CUDA_CHECK(cudaGetLastError());
  flash_bwd_dq_kernel<HS, WARPS><<<dim3(unsigned((s.Tq + B16 - 1) / B16), unsigned(s.NH), unsigned(s.B)),
                                   WARPS * 32, smem2, st>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void flash_bwd(const FlashShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
               const uint16_t* dout, const float* lse, const float* delta, float* dq, float* dk,
               float* dv, void* stream, BwdKernel kernel, bool dkv_accumulate) {
  check_flash_shape(s);
  check_flash_align(q, 16, "q"), check_flash_align(k, 16, "k"), check_flash_align(v, 16, "v");
  check_flash_align(dout, 16, "dout"), check_flash_align(lse, 4, "lse"), check_flash_align(delta, 4, "delta");
  check_flash_align(dq, 8, "dq"), check_flash_align(dk, 8, "dk"), check_flash_align(dv, 8, "dv");
  auto st = static_cast<cudaStream_t>(stream);
  if (s.mask == Mask::kSkip) {  // no query sees a key: dq, and accumulated dk/dv, unchanged
    if (!dkv_accumulate && s.B * s.Tk > 0) {
      const size_t bytes = size_t(s.B * s.Tk * s.NKV * s.HS) * sizeof(float);
      CUDA_CHECK(cudaMemsetAsync(dk, 0, bytes, st));
      CUDA_CHECK(cudaMemsetAsync(dv, 0, bytes, st));
    }
    return;
  }
  const double scale = 1.0 / std::sqrt(double(s.HS));
  BwdArgs a{reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k),
            reinterpret_cast<const __nv_bfloat16*>(v), reinterpret_cast<const __nv_bfloat16*>(dout),
            lse, delta, dq, dk, dv, s, float(scale), float(scale * 1.4426950408889634), dkv_accumulate};
  if (kernel == BwdKernel::kWgmma) flash_require(wgmma_available(), "the wgmma kernel needs an sm_90 GPU");
  if (kernel == BwdKernel::kWgmma || (kernel == BwdKernel::kAuto && wgmma_available())) {
    flash_bwd_wgmma(a, st);
    return;
  }
  if (s.HS == 128) launch_bwd<128, 4>(a, st);
  else launch_bwd<64, 4>(a, st);
}

}  // namespace longctx::gpu
