// flash_common.cuh — what the attention .cu files share on the host side. The .cu files stay free
// of fmt (nvcc cannot compile its compile-time format checks): errors are raised by functions in
// src/backend/cuda/flash_check.cpp, compiled by the host compiler.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "longctx/flash.h"
#include "longctx/flash_check.h"

namespace longctx::gpu {
// What both backward kernels take (cuda/flash_bwd.cu, cuda/flash_bwd_wgmma.cu); see flash_bwd.
struct BwdArgs {
  const __nv_bfloat16 *q, *k, *v, *dout;
  const float *lse, *delta;
  float *dq, *dk, *dv;
  FlashShape s;
  float scale, scale_log2;  // 1/sqrt(HS), and times log2(e)
  bool dkv_add = true;      // dk/dv += the block's (true) or = (false); dq is always +=
};
// Throws longctx::Error naming the failed call, its error string and file:line, with a hint.
[[noreturn]] void cuda_fail(const char* call, const char* error, const char* file, int line);
// The sm_90a forward (cuda/flash_fwd_wgmma.cu); same contract as flash_fwd.
void flash_fwd_wgmma(const FlashShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                     uint16_t* o, float* o32, float* lse, void* stream, bool merge);
// The sm_90a backward (cuda/flash_bwd_wgmma.cu); same contract as flash_bwd, dQ by atomics.
void flash_bwd_wgmma(const BwdArgs& a, cudaStream_t stream);
}  // namespace longctx::gpu

namespace longctx::gpu {
// The exact (O, LSE) merge (flash_merge; the forward kernels' epilogue with `merge`): a running
// partial of lse a (may be -inf) and a block's of lse b (finite) give lse and the two weights;
// o' = fma(o, wa, o_blk·wb).
struct MergeWeights {
  float wa, wb, lse;
};
__device__ __forceinline__ MergeWeights merge_weights(float a, float b) {
  const float mx = fmaxf(a, b), tot = mx + logf(expf(a - mx) + expf(b - mx));
  return {expf(a - tot), expf(b - tot), tot};
}
__device__ __forceinline__ float2 merge_o(float2 o, float x0, float x1, const MergeWeights& w) {
  return make_float2(__fmaf_rn(o.x, w.wa, x0 * w.wb), __fmaf_rn(o.y, w.wa, x1 * w.wb));
}

// Keys [0, end) that any of the query rows [q0, q0 + rows) may see (all of them unless causal).
__device__ __forceinline__ int64_t visible_key_end(const FlashShape& s, int64_t q0, int64_t rows) {
  if (s.mask != Mask::kCausal) return s.Tk;
  const int64_t last_q = (q0 + rows < s.Tq ? q0 + rows : s.Tq) - 1;
  const int64_t end = s.q_pos0 + last_q - s.k_pos0 + 1;
  return end < 0 ? 0 : (end < s.Tk ? end : s.Tk);
}
}  // namespace longctx::gpu

// CUDA_CHECK(call): a failing CUDA call throws longctx::Error (see cuda_fail).
#define CUDA_CHECK(call)                                                                    \
  do {                                                                                      \
    const cudaError_t err_ = (call);                                                        \
    if (err_ != cudaSuccess) ::longctx::gpu::cuda_fail(#call, cudaGetErrorString(err_), __FILE__, __LINE__); \
  } while (0)
