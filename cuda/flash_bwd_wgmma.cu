// flash_bwd_wgmma.cu — the attention backward on Hopper warpgroup MMAs (sm_90a), 5 matmuls.
//   Same math and contract as flash_bwd.cu (see there): P = exp(S·scale - lse), dV += Pᵀ·dO,
//   dP = dO·Vᵀ, dS = P∘(dP - delta), dK += dSᵀ·Q·scale, dQ += dS·K·scale.
//   One block owns BN = 128 keys of one K/V head (2 warpgroups × 64 keys) and walks every query
//   tile (BM = 64 rows) of every query head of its group. Per query tile and warpgroup (64 keys):
//     Sᵀ  = K_w·Qᵀ    wgmma m64n64,  K and Q from swizzled smem (K-major)
//     dPᵀ = V_w·dOᵀ   wgmma m64n64,  issued with Sᵀ; Pᵀ is computed while it runs
//     dV += Pᵀ·dO     wgmma m64n{HS}, Pᵀ from registers, dO MN-major;   dSᵀ computed while it runs
//     dK += dSᵀ·Q     wgmma m64n{HS}, dSᵀ from registers, Q MN-major; dSᵀ also stored to smem
//     dQ  = dS·K      both operands MN-major (dS read through its transpose), from smem.
//   Two schedules:
//   - HS=128 (kernel_hs128): warpgroup w computes dQ's columns [64w, 64w+64) over all 128 keys
//     (wgmma m64n64) right after dK, in the same step; Q, dO double-buffered.
//   - HS=64 (kernel_hs64), software-pipelined so the tensor cores have queued work through the
//     softmax: tile i's Sᵀ and dPᵀ are issued together with tile i-1's dQ, so Pᵀ's exponentials
//     run under dPᵀ and dQ, dSᵀ under dV, and tile i-1's dQ reductions under dV and dK.
//     Warpgroup w computes dQ's columns [32w, 32w+32) over all 128 keys (wgmma m64n32, both
//     warpgroups' dSᵀ), so each dQ element gets one reduction per block: 8 red.global per thread
//     and step instead of 16, 16 accumulator registers instead of 32 (206 registers): 245 -> 296
//     TFLOP/s. Q, dO, lse, delta in 4 buffers (loaded two tiles ahead: a buffer is rewritten only
//     after both warpgroups' last reads of it completed), dSᵀ in 2 (tile i-1's is read by its dQ
//     while tile i's is written).
//     Tried and dropped: dQ over all 128 keys by the warpgroups in turn (a warpgroup-dependent
//     branch made ptxas serialize every wgmma, C7520); K and V as register A operands of Sᵀ and
//     dPᵀ (254 + 32 registers do not fit); dQ staged in shared memory and added by 256-byte bulk
//     reductions (cp.reduce.async.bulk) in place of red.global: 229 against 247 TFLOP/s.
//   In both, Sᵀ's and dPᵀ's accumulators start at -lse/scale and -delta (preset_tile), so the
//   softmax and dS read no lse or delta from shared memory: hd 64 297 -> 357 TFLOP/s (one call).
//   Both kernels keep the loop lean (docs/PERFORMANCE.md, v12): per-thread tile-load offsets fixed
//   once (TileLoader), descriptors made once and moved by constants, one edge branch per tile,
//   shared memory addressed as such (align1024), the proxy fence ahead of the dQ reductions.
//   dQ is added to global memory by fp32 reductions (red.global.add.v2.f32), so the order of the
//   additions, and the last bits of dQ, vary from run to run: this is the fast, non-deterministic
//   kernel; flash_bwd.cu is the deterministic one (FA2's and cuDNN's backward are also atomic).
//   Saved tensors read: Q, K, V, dO (bf16), lse, delta (fp32). Shared memory: HS=128: K, V 32 KB
//   each, Q and dO 2 × 16 KB each, dSᵀ 16 KB: 145 KB; HS=64: K, V 16 KB each, Q and dO 4 × 8 KB
//   each, dSᵀ 2 × 16 KB, lse and delta 2 KB, each slot's (head, q0): 131 KB with the alignment
//   slack. One block (8 warps)
//   per SM.
//   Limits: HS 64 or 128; sm_90a only (flash_bwd falls back to flash_bwd.cu elsewhere).
#include <cuda_runtime.h>

#include "flash_common.cuh"
#include "wgmma.cuh"

namespace longctx::gpu {

namespace {

constexpr int BN = 128, BM = 64, THREADS = 256;

// acc (64 x HS) += A · B over 64 k-rows: A as 4 register fragments (16 k each, from the C layout
// of an m64n64 wgmma), B a swizzled smem tile of BM = 64 rows x HS read MN-major (descriptor
// d_mn, made with smem_desc(tile, BM * 128, 1024)). One commit group.
template <int HS>
__device__ __forceinline__ void wgmma_rs_k64(float* acc, const uint32_t (&frag)[4][4], uint64_t d_mn) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const uint64_t db = desc_add(d_mn, kk * 16 * 128);
    if constexpr (HS == 128) wgmma_rs_n128(acc, frag[kk], db);
    else wgmma_rs_n64(acc, frag[kk], db);
  }
  wgmma_commit();
}

// Where a block is and what it walks: the (query head, query tile) pairs that see its keys.
struct Walk {
  int64_t k0, kvh, b, group, qt0, per_head, steps;
  __device__ Walk(const FlashShape& s) {
    k0 = int64_t(blockIdx.x) * BN, kvh = blockIdx.y, b = blockIdx.z, group = s.NH / s.NKV;
    qt0 = 0;  // query tiles that can see a key of this block: from the first query at or after k0
    if (s.mask == Mask::kCausal) qt0 = max64(0, s.k_pos0 + k0 - s.q_pos0) / BM;
    const int64_t nqt = (s.Tq + BM - 1) / BM;
    per_head = nqt > qt0 ? nqt - qt0 : 0;
    steps = per_head * group;
  }
  __device__ int64_t head(int64_t i) const { return kvh * group + i / per_head; }
  __device__ int64_t q0(int64_t i) const { return (qt0 + i % per_head) * BM; }
};

// The walk's steps one at a time, without Walk's 64-bit divisions (a called routine in the loop).
struct Cursor {
  int head, qt, qt_begin, qt_end;
  __device__ explicit Cursor(const Walk& w)
      : head(int(w.kvh * w.group)), qt(int(w.qt0)), qt_begin(int(w.qt0)), qt_end(int(w.qt0 + w.per_head)) {}
  __device__ int64_t q0() const { return int64_t(qt) * BM; }
  __device__ void advance() {
    if (++qt == qt_end) qt = qt_begin, ++head;
  }
};

// Threads [0, 128): the lse (first 64; -inf for rows past the end) or delta (next 64) of one row
// of query head h's tile at q0, read through registers (strided in memory). store_row keeps the
// start values of preset_tile: -lse/scale (-inf for rows that saw nothing, so P = 0) and -delta.
// The scaling waits for the load, so it is done at the store, a step later, not here.
__device__ __forceinline__ float load_row(const BwdArgs& a, int64_t b, int64_t h, int64_t q0) {
  const int64_t row = q0 + (threadIdx.x & 63);
  if (row >= a.s.Tq) return threadIdx.x < 64 ? -INFINITY : 0.f;
  const int64_t at = (b * a.s.Tq + row) * a.s.NH + h;
  return threadIdx.x < 64 ? a.lse[at] : a.delta[at];
}
__device__ __forceinline__ void store_row(float x, float* Lb, float* Eb, float scale) {
  if (threadIdx.x < 64) Lb[threadIdx.x] = x == -INFINITY ? -INFINITY : -x / scale;
  else if (threadIdx.x < 128) Eb[threadIdx.x - 64] = -x;
}

// Sᵀ and dPᵀ (64 keys x 64 queries of this warpgroup): two commit groups. Descriptors K-major
// (smem_desc(tile, 16, 1024)): K-step kk is 32 bytes into panel kk/4 of Kw/Vw (BN rows per
// panel) and of Qt/Ot (BM rows per panel).
// st and dpt hold their start values (preset_tile), which the products add to.
template <int HS>
__device__ __forceinline__ void issue_s_dp(float (&st)[32], float (&dpt)[32], uint64_t dKw, uint64_t dVw,
                                           uint64_t dQt, uint64_t dOt) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < HS / 16; ++kk)
    wgmma_ss_n64(st, desc_add(dKw, (kk / 4) * BN * 128 + (kk % 4) * 32),
                 desc_add(dQt, (kk / 4) * BM * 128 + (kk % 4) * 32), true);
  wgmma_commit();
#pragma unroll
  for (int kk = 0; kk < HS / 16; ++kk)
    wgmma_ss_n64(dpt, desc_add(dVw, (kk / 4) * BN * 128 + (kk % 4) * 32),
                 desc_add(dOt, (kk / 4) * BM * 128 + (kk % 4) * 32), true);
  wgmma_commit();
}

// The accumulators' start values: Sᵀ's starts at -lse/scale and dPᵀ's at -delta for each query
// column, so the products give S - lse/scale and dP - delta, and the softmax and dS read no shared
// memory (their lse/delta loads had waited on the short scoreboard): hd-64 backward 297 -> 357
// TFLOP/s. Lt/Et hold those start values (store_row); rows that saw nothing, or lie past the end,
// start at -inf, so P = 0. In kernel_hs64 ptxas injects a warpgroup wait before the preset
// (C7517, in the -Xptxas -v log): the previous step's dV and dK no longer run under the next
// step's start, and the form is faster all the same.
__device__ __forceinline__ void preset_tile(float (&st)[32], float (&dpt)[32], const float* Lt, const float* Et,
                                            int c) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    const float2 L = reinterpret_cast<const float2*>(Lt)[nt * 4 + c];  // columns 8nt + 2c, +1
    const float2 E = reinterpret_cast<const float2*>(Et)[nt * 4 + c];
    st[4 * nt] = st[4 * nt + 2] = L.x, st[4 * nt + 1] = st[4 * nt + 3] = L.y;
    dpt[4 * nt] = dpt[4 * nt + 2] = E.x, dpt[4 * nt + 1] = dpt[4 * nt + 3] = E.y;
  }
}

// Pᵀ in place of Sᵀ, and as A fragments (16 queries per k-step). st[4·nt + e] is (key
// key0 + 8·(e/2), query q0 + 8·nt + 2c + e%2), as mma.sync's C. kEdge: the block crosses the end
// of the keys or the diagonal (at_edge), so scores are masked; the caller branches once per tile
// (a test per element made ptxas branch 32 times per tile).
template <bool kEdge>
__device__ __forceinline__ void softmax_tile(float (&st)[32], uint32_t (&pa)[4][4], const BwdArgs& a,
                                             int64_t key0, int64_t q0, int c) {
  const FlashShape& s = a.s;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float p = exp2f(st[4 * nt + e] * a.scale_log2);  // st holds S - lse/scale (preset_tile)
      if constexpr (kEdge) {
        const int col = nt * 8 + 2 * c + (e & 1);
        const int64_t j = key0 + 8 * (e >> 1);
        if (j >= s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + j > s.q_pos0 + q0 + col)) p = 0.f;
      }
      st[4 * nt + e] = p;
    }
  }
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r) pa[kk][r] = pack_bf16(st[8 * kk + 2 * r], st[8 * kk + 2 * r + 1]);
}

// Does the block's key range cross the end of the keys or the diagonal for query tile q0?
__device__ __forceinline__ bool at_edge(const FlashShape& s, int64_t k0, int64_t q0) {
  return k0 + BN > s.Tk || (s.mask == Mask::kCausal && s.k_pos0 + k0 + BN - 1 > s.q_pos0 + q0);
}
__device__ __forceinline__ void softmax_tile(float (&st)[32], uint32_t (&pa)[4][4], const BwdArgs& a,
                                             int64_t k0, int64_t key0, int64_t q0, int c) {
  if (at_edge(a.s, k0, q0)) softmax_tile<true>(st, pa, a, key0, q0, c);
  else softmax_tile<false>(st, pa, a, key0, q0, c);
}

// dSᵀ = Pᵀ∘(dPᵀ - delta), dpt holding dPᵀ - delta (preset_tile): to A fragments for dK and to
// the swizzled dSᵀ tile (BN keys x BM queries) for dQ; Sw is row g of this warp's 16 keys in it.
__device__ __forceinline__ void ds_tile(const float (&pt)[32], const float (&dpt)[32], uint32_t (&sa)[4][4],
                                        __nv_bfloat16* Sw, int warp, int g, int c) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const uint32_t x = pack_bf16(pt[4 * nt + 2 * hr] * dpt[4 * nt + 2 * hr],
                                   pt[4 * nt + 2 * hr + 1] * dpt[4 * nt + 2 * hr + 1]);
      sa[nt / 2][(nt % 2) * 2 + hr] = x;
      const int r = warp * 16 + g + 8 * hr;  // swizzle by the row within its 8-row group
      *reinterpret_cast<uint32_t*>(Sw + hr * 8 * 64 + (((nt ^ (r & 7))) << 3) + 2 * c) = x;
    }
  }
}

// dq (64 queries x 64 columns) = dS·K over key steps [ks0, ks0 + KKN) of 16 keys, columns from
// panel `panel` of K: both operands MN-major (dS_mn = smem_desc(dSᵀ tile, BN * 128, 1024),
// dK_mn = smem_desc(Ks, BN * 128, 1024)). One commit group.
template <int KKN>
__device__ __forceinline__ void issue_dq(float (&dq)[32], uint64_t dS_mn, uint64_t dK_mn, int ks0, int panel) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < KKN; ++kk) {
    const int ks = ks0 + kk;
    wgmma_ss_n64_tt(dq, desc_add(dS_mn, ks * 16 * 128), desc_add(dK_mn, panel * BN * 128 + ks * 16 * 128), kk > 0);
  }
  wgmma_commit();
}

// kernel_hs64's dq (64 queries x 32 columns [32·wg, 32·wg + 32)) = dS·K over all BN = 128 keys
// of the block (both warpgroups' dSᵀ): dK_mn + 64·wg bytes starts 32 columns into K's 128-byte
// swizzled rows. Each dQ element then gets one reduction per block instead of one per warpgroup.
// One commit group.
__device__ __forceinline__ void issue_dq32(float (&dq)[16], uint64_t dS_mn, uint64_t dK_mn, int wg) {
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < BN / 16; ++ks)
    wgmma_ss_n32_tt(dq, desc_add(dS_mn, ks * 16 * 128), desc_add(dK_mn, wg * 64 + ks * 16 * 128), ks > 0);
  wgmma_commit();
}

// *p += (x, y) in global memory, no value returned: one red.global.add.v2.f32 (atomicAdd on a float2
// is an atom that returns the old values).
__device__ __forceinline__ void red_add_f32x2(float* p, float x, float y) {
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(x), "f"(y) : "memory");
}

// dQ rows [q0, q0 + 64) of head h, columns [col0, col0 + N) += dq · scale, dq being an m64nN
// accumulator (N/2 per thread): N = 64 in kernel_hs128, 32 in kernel_hs64. Reductions (red).
template <int HS, int N>
__device__ __forceinline__ void add_dq(const float (&dq)[N / 2], const BwdArgs& a, int64_t b, int64_t h, int64_t q0,
                                       int col0, int warp, int g, int c) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int64_t row = q0 + warp * 16 + g + 8 * hr;
    if (row >= a.s.Tq) continue;
    float* dst = a.dq + ((b * a.s.Tq + row) * a.s.NH + h) * HS + col0 + 2 * c;
#pragma unroll
    for (int nt = 0; nt < N / 8; ++nt)
      red_add_f32x2(dst + nt * 8, dq[4 * nt + 2 * hr] * a.scale, dq[4 * nt + 2 * hr + 1] * a.scale);
  }
}

// dK, dV rows of this warpgroup (this block owns them): read-modify-write, or written when
// !a.dkv_add.
template <int HS>
__device__ __forceinline__ void store_dkv(const float (&dk)[HS / 2], const float (&dv)[HS / 2], const BwdArgs& a,
                                          const Walk& w, int wg, int warp, int g, int c) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int64_t key = w.k0 + wg * 64 + warp * 16 + g + 8 * hr;
    if (key >= a.s.Tk) continue;
    const int64_t at = ((w.b * a.s.Tk + key) * a.s.NKV + w.kvh) * HS + 2 * c;
#pragma unroll
    for (int j = 0; j < HS / 8; ++j) {
      float2* pk = reinterpret_cast<float2*>(a.dk + at + j * 8);
      float2* pv = reinterpret_cast<float2*>(a.dv + at + j * 8);
      float2 x = make_float2(0.f, 0.f), y = x;
      if (a.dkv_add) x = *pk, y = *pv;
      x.x += dk[4 * j + 2 * hr] * a.scale, x.y += dk[4 * j + 2 * hr + 1] * a.scale;
      y.x += dv[4 * j + 2 * hr], y.y += dv[4 * j + 2 * hr + 1];
      *pk = x, *pv = y;
    }
  }
}

__global__ void __launch_bounds__(THREADS, 1) kernel_hs128(const BwdArgs a) {
  constexpr int HS = 128;
  extern __shared__ unsigned char smem_raw[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(align1024(smem_raw));
  __nv_bfloat16* Vs = Ks + BN * HS;
  __nv_bfloat16* Qs = Vs + BN * HS;      // [2][BM x HS]
  __nv_bfloat16* Os = Qs + 2 * BM * HS;  // [2][BM x HS] (dO)
  __nv_bfloat16* Ss = Os + 2 * BM * HS;  // dSᵀ: BN keys x BM queries, one 64-column panel
  float* Ls = reinterpret_cast<float*>(Ss + BN * BM);  // [2][BM] -lse/scale (store_row)
  float* Es = Ls + 2 * BM;                             // [2][BM] -delta

  const FlashShape& s = a.s;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x & 31;
  const int g = lane / 4, c = lane % 4;
  const Walk w(s);
  const TileLoader<BM, HS, THREADS> load_q(s.q_st);  // Q and dO tiles (the same strides)
  load_sw128<BN, HS, THREADS>(Ks, a.k + w.b * s.k_sb + w.kvh * s.k_sh, s.k_st, w.k0, s.Tk);
  load_sw128<BN, HS, THREADS>(Vs, a.v + w.b * s.k_sb + w.kvh * s.k_sh, s.k_st, w.k0, s.Tk);
  if (w.steps > 0) {
    const int64_t off = w.b * s.q_sb + w.head(0) * s.q_sh;
    load_q(Qs, a.q + off, w.q0(0), s.Tq);
    load_q(Os, a.dout + off, w.q0(0), s.Tq);
    if (threadIdx.x < 128) store_row(load_row(a, w.b, w.head(0), w.q0(0)), Ls, Es, a.scale);
  }
  cp_async_commit();

  float dk[HS / 2] = {}, dv[HS / 2] = {};
  const int64_t key0 = w.k0 + wg * 64 + warp * 16 + g;
  __nv_bfloat16* Sw = Ss + (wg * 64 + warp * 16 + g) * 64;
  // Descriptors of slot 0 (a slot is BM * HS * 2 bytes further); this warpgroup's 64 keys of K, V.
  const uint64_t dKw = smem_desc(Ks + wg * 64 * 64, 16, 1024), dVw = smem_desc(Vs + wg * 64 * 64, 16, 1024);
  const uint64_t dQk = smem_desc(Qs, 16, 1024), dOk = smem_desc(Os, 16, 1024);
  const uint64_t dQmn = smem_desc(Qs, BM * 128, 1024), dOmn = smem_desc(Os, BM * 128, 1024);
  const uint64_t dSmn = smem_desc(Ss, BN * 128, 1024), dKmn = smem_desc(Ks, BN * 128, 1024);
  cp_async_wait<0>();  // tile 0 (later tiles: waited for and fenced at the end of the step before,
  fence_proxy_async();  // ahead of its dQ reductions, as in kernel_hs64)
  for (int64_t i = 0; i < w.steps; ++i) {
    const int buf = int(i & 1);
    __syncthreads();
    float next_row = 0.f;
    if (i + 1 < w.steps) {
      const int64_t h = w.head(i + 1), qn = w.q0(i + 1), off = w.b * s.q_sb + h * s.q_sh;
      load_q(Qs + (buf ^ 1) * BM * HS, a.q + off, qn, s.Tq);
      load_q(Os + (buf ^ 1) * BM * HS, a.dout + off, qn, s.Tq);
      if (threadIdx.x < 128) next_row = load_row(a, w.b, h, qn);
    }
    cp_async_commit();
    const uint32_t slot = buf * BM * HS * 2;
    const int64_t q0 = w.q0(i);

    float st[32], dpt[32];
    preset_tile(st, dpt, Ls + buf * BM, Es + buf * BM, c);
    issue_s_dp<HS>(st, dpt, dKw, dVw, desc_add(dQk, slot), desc_add(dOk, slot));
    wgmma_wait<1>();
    uint32_t pa[4][4];
    softmax_tile(st, pa, a, w.k0, key0, q0, c);
    wgmma_rs_k64<HS>(dv, pa, desc_add(dOmn, slot));  // dV += Pᵀ·dO
    wgmma_wait<1>();                                  // dPᵀ done (dV may still run)
    uint32_t sa[4][4];
    ds_tile(st, dpt, sa, Sw, warp, g, c);
    wgmma_rs_k64<HS>(dk, sa, desc_add(dQmn, slot));  // dK += dSᵀ·Q
    fence_proxy_async();
    __syncthreads();  // all of dSᵀ is in shared memory

    float dq[32];  // this warpgroup's 64 columns over all 128 keys
    issue_dq<8>(dq, dSmn, dKmn, 0, wg);
    wgmma_wait0();
    cp_async_wait<0>();  // tile i+1
    fence_proxy_async();
    add_dq<HS, 64>(dq, a, w.b, w.head(i), q0, 64 * wg, warp, g, c);
    if (i + 1 < w.steps) store_row(next_row, Ls + (buf ^ 1) * BM, Es + (buf ^ 1) * BM, a.scale);
  }
  cp_async_wait<0>();
  store_dkv<HS>(dk, dv, a, w, wg, warp, g, c);
}

constexpr int NBUF = 4;  // Q/dO/lse/delta buffers of the pipelined HS=64 kernel

__global__ void __launch_bounds__(THREADS, 1) kernel_hs64(const BwdArgs a) {
  constexpr int HS = 64;
  extern __shared__ unsigned char smem_raw[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(align1024(smem_raw));
  __nv_bfloat16* Vs = Ks + BN * HS;
  __nv_bfloat16* Qs = Vs + BN * HS;         // [NBUF][BM x HS]
  __nv_bfloat16* Os = Qs + NBUF * BM * HS;  // [NBUF][BM x HS] (dO)
  __nv_bfloat16* Ss = Os + NBUF * BM * HS;  // [2][BN keys x BM queries] dSᵀ
  float* Ls = reinterpret_cast<float*>(Ss + 2 * BN * BM);  // [NBUF][BM] -lse/scale (store_row)
  float* Es = Ls + NBUF * BM;                              // [NBUF][BM] -delta
  int2* Ts = reinterpret_cast<int2*>(Es + NBUF * BM);      // [NBUF] each slot's (query head, q0)

  const FlashShape& s = a.s;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x & 31;
  const int g = lane / 4, c = lane % 4;
  const Walk w(s);
  const int steps = int(w.steps);  // < 2^31 (check_flash_shape)
  const TileLoader<BM, HS, THREADS> load_q(s.q_st);  // Q and dO tiles (the same strides)
  load_sw128<BN, HS, THREADS>(Ks, a.k + w.b * s.k_sb + w.kvh * s.k_sh, s.k_st, w.k0, s.Tk);
  load_sw128<BN, HS, THREADS>(Vs, a.v + w.b * s.k_sb + w.kvh * s.k_sh, s.k_st, w.k0, s.Tk);
  Cursor ahead(w);  // the step whose tiles load next
  // Step i's tiles, lse/delta rows and (head, q0) into slot `buf`; the rows go through a register
  // (`row`, stored by the caller) so their load's latency hides behind the step.
  auto load_step = [&](int buf, float& row) {
    const int64_t q0 = ahead.q0(), off = w.b * s.q_sb + int64_t(ahead.head) * s.q_sh;
    load_q(Qs + buf * BM * HS, a.q + off, q0, s.Tq);
    load_q(Os + buf * BM * HS, a.dout + off, q0, s.Tq);
    if (threadIdx.x < 128) row = load_row(a, w.b, ahead.head, q0);
    if (threadIdx.x == 0) Ts[buf] = make_int2(ahead.head, int(q0));
    ahead.advance();
  };
  for (int i = 0; i < 2; ++i) {  // tiles 0 and 1: one cp.async group each
    if (i < steps) {
      float row = 0.f;
      load_step(i, row);
      store_row(row, Ls + i * BM, Es + i * BM, a.scale);
    }
    cp_async_commit();
  }

  float dk[HS / 2] = {}, dv[HS / 2] = {}, dq[16];
  const int64_t key0 = w.k0 + wg * 64 + warp * 16 + g;
  const int sw_row = (wg * 64 + warp * 16 + g) * 64;
  // Descriptors of slot 0 (a Q/dO slot is BM * HS * 2 bytes further, a dSᵀ one BN * BM * 2).
  const uint64_t dKw = smem_desc(Ks + wg * 64 * 64, 16, 1024), dVw = smem_desc(Vs + wg * 64 * 64, 16, 1024);
  const uint64_t dQk = smem_desc(Qs, 16, 1024), dOk = smem_desc(Os, 16, 1024);
  const uint64_t dQmn = smem_desc(Qs, BM * 128, 1024), dOmn = smem_desc(Os, BM * 128, 1024);
  const uint64_t dSmn = smem_desc(Ss, BN * 128, 1024), dKmn = smem_desc(Ks, BN * 128, 1024);
  // The proxy fence (a MEMBAR in SASS: it waits for the thread's memory accesses in flight) comes
  // before a step's dQ reductions, not right after them as at the top of the loop: +3% at hd 64.
  cp_async_wait<1>();  // tile 0 has landed
  fence_proxy_async();
  for (int i = 0; i < steps; ++i) {
    const int buf = i % NBUF;
    // Tile i and its rows are visible (waited for and fenced at the end of step i-1); both
    // warpgroups' dSᵀ of tile i-1 is in Ss[(i-1) & 1]; both are past their wait for tile i-1's
    // Sᵀ, so their reads of tile i-2's buffer have completed (and of its Ts entry: tile i-2's dQ
    // was added in step i-1).
    __syncthreads();
    float next_row = 0.f;
    const int nbuf = (i + 2) % NBUF;
    if (i + 2 < steps) load_step(nbuf, next_row);
    cp_async_commit();
    const uint32_t slot = buf * BM * HS * 2;
    const int64_t q0 = Ts[buf].y;

    float st[32], dpt[32];
    preset_tile(st, dpt, Ls + buf * BM, Es + buf * BM, c);
    issue_s_dp<HS>(st, dpt, dKw, dVw, desc_add(dQk, slot), desc_add(dOk, slot));  // Sᵀ_i, dPᵀ_i
    // dQ_{i-1}, this warpgroup's 32 columns over the block's 128 keys. At i = 0 it multiplies an
    // unwritten buffer and is dropped: issuing it unconditionally keeps ptxas from serializing the
    // wgmmas (C7520).
    issue_dq32(dq, desc_add(dSmn, ((i - 1) & 1) * BN * BM * 2), dKmn, wg);
    wgmma_wait<2>();      // Sᵀ_i (dPᵀ_i, dQ_{i-1} may run)
    uint32_t pa[4][4];
    softmax_tile(st, pa, a, w.k0, key0, q0, c);
    wgmma_rs_k64<HS>(dv, pa, desc_add(dOmn, slot));  // dV += Pᵀ·dO
    wgmma_wait<2>();                                  // dPᵀ_i (dQ_{i-1}, dV may run)
    uint32_t sa[4][4];
    ds_tile(st, dpt, sa, Ss + (i & 1) * BN * BM + sw_row, warp, g, c);
    wgmma_rs_k64<HS>(dk, sa, desc_add(dQmn, slot));  // dK += dSᵀ·Q
    wgmma_wait<2>();                                  // dQ_{i-1} (dV, dK may run)
    cp_async_wait<1>();  // tile i+1 has landed (tile i+2 may still be in flight)
    fence_proxy_async();  // it and dSᵀ_i (st.shared) are read by wgmma in the next step
    if (i > 0) {
      const int2 t = Ts[(i - 1) % NBUF];
      add_dq<HS, 32>(dq, a, w.b, t.x, t.y, 32 * wg, warp, g, c);
    }
    if (i + 2 < steps) store_row(next_row, Ls + nbuf * BM, Es + nbuf * BM, a.scale);
  }
  __syncthreads();  // the last tile's dSᵀ from both warpgroups
  if (steps > 0) {
    const int last = steps - 1;
    issue_dq32(dq, desc_add(dSmn, (last & 1) * BN * BM * 2), dKmn, wg);
    wgmma_wait0();
    const int2 t = Ts[last % NBUF];
    add_dq<HS, 32>(dq, a, w.b, t.x, t.y, 32 * wg, warp, g, c);
  }
  wgmma_wait0();
  cp_async_wait<0>();
  store_dkv<HS>(dk, dv, a, w, wg, warp, g, c);
}

// One `configured` per kernel (a template argument, so each kernel gets its own static).
template <auto kernel>
void launch(size_t smem, const BwdArgs& a, cudaStream_t st) {
  static bool configured = false;
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    configured = true;
  }
  const dim3 grid(unsigned((a.s.Tk + BN - 1) / BN), unsigned(a.s.NKV), unsigned(a.s.B));
  kernel<<<grid, THREADS, smem, st>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Called by flash_bwd on sm_90 devices (see flash_bwd.cu).
void flash_bwd_wgmma(const BwdArgs& a, cudaStream_t stream) {
  if (a.s.HS == 128) {
    constexpr int HS = 128;
    launch<kernel_hs128>(size_t(2 * BN + 4 * BM) * HS * 2 + size_t(BN * BM) * 2 + 4 * BM * sizeof(float) + 1024,
               a, stream);
  } else {
    constexpr int HS = 64;
    const size_t smem = size_t(2 * BN + 2 * NBUF * BM) * HS * 2 + size_t(2 * BN * BM) * 2 +
                        2 * NBUF * BM * sizeof(float) + NBUF * sizeof(int2) + 1024;
    launch<kernel_hs64>(smem, a, stream);
  }
}

}  // namespace longctx::gpu
