// cast.cu — out = in.to(bf16) (round to nearest even) and out = in.to(fp32) (exact), elementwise.
//   in/out (n) contiguous, fp32 <-> bf16; nothing saved; n >= 0 (n = 0 launches nothing).
//   Grid-stride loop, int64 indices (any n). out must not partly overlap in.
#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = to_bf(in[i]);
}

__global__ void bf16_to_f32_kernel(float* out, const __nv_bfloat16* in, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = bf(in[i]);
}

}  // namespace

void cast_f32_to_bf16(uint16_t* out, const float* in, int64_t n, void* stream) {
  ops_require(n >= 0, "cast_f32_to_bf16", "n < 0");
  if (n == 0) return;
  f32_to_bf16_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(as_bf(out), in, n);
  CUDA_CHECK(cudaGetLastError());
}

void cast_bf16_to_f32(float* out, const uint16_t* in, int64_t n, void* stream) {
  ops_require(n >= 0, "cast_bf16_to_f32", "n < 0");
  if (n == 0) return;
  bf16_to_f32_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(out, as_bf(in), n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
