// ops_common.cuh — what the small-op kernels of backend/cuda_ops.h share: stream and grid helpers,
// bf16 conversions, a block reduction in a fixed order (deterministic), and the host-side argument
// check ops_require (src/backend/cuda/ops_check.cpp: the .cu files stay free of fmt).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "flash_common.cuh"  // CUDA_CHECK, cuda_fail
#include "longctx/backend/cuda_ops.h"

namespace longctx::gpu {

// Host side: throws longctx::Error "<op>: <what>" unless ok.
void ops_require(bool ok, const char* op, const char* what);

constexpr int kOpThreads = 256;          // threads per block of the elementwise kernels
constexpr int64_t kMaxGridBlocks = 4096; // grid-stride kernels: 4096·256 threads cover an H200 ~4×
constexpr int64_t kInt32Max = 2147483647;

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
// Blocks of `threads` for n elements in a grid-stride loop (n > 0).
inline unsigned stride_grid(int64_t n, int threads = kOpThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < kMaxGridBlocks ? b : kMaxGridBlocks);
}

__device__ __forceinline__ float bf(const __nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ __nv_bfloat16 to_bf(float x) { return __float2bfloat16_rn(x); }
// The bf16 bits of the public header as the device type (host side, for the launchers).
inline const __nv_bfloat16* as_bf(const uint16_t* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
inline __nv_bfloat16* as_bf(uint16_t* p) { return reinterpret_cast<__nv_bfloat16*>(p); }

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Reduces v over the block in a fixed order (warp butterflies, then the warps' results in warp 0):
// the same bits on every run. Every thread of the block must call it (no early return before);
// blockDim.x a multiple of 32, at most 1024. Every thread gets the result.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // a previous call's readers are done with part[]
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < nwarps ? part[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace longctx::gpu
