// rope.cu — x1, x2 = x[..., :HS/2], x[..., HS/2:];  x = cat(x1*cos - x2*sin', x2*cos + x1*sin'), sin' = sign*sin.
//   x (B, T, H, HS) bf16 contiguous, in place; cos_t, sin_t (T, HS/2) fp32 (cpu::rope_table); sign +1 / -1.
//   fp32 math in the CPU's operation order (no fused multiply-adds), rounded to bf16 once. Nothing saved.
//   One thread per pair (i, i + HS/2), grid-stride over B·T·H·HS/2 (int64).
//   Limits (launcher): B, T, H >= 1, HS even >= 2, sign = ±1.
#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

__global__ void rope_kernel(__nv_bfloat16* x, const float* cos_t, const float* sin_t, int64_t T, int64_t H,
                            int64_t H2, int64_t pairs, float sign) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < pairs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = p % H2, row = p / H2;  // row = (b·T + t)·H + h
    const int64_t t = (row / H) % T;
    __nv_bfloat16* v = x + row * 2 * H2;
    const float c = cos_t[t * H2 + i], sn = __fmul_rn(sign, sin_t[t * H2 + i]);
    const float x1 = bf(v[i]), x2 = bf(v[i + H2]);
    v[i] = to_bf(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, sn)));
    v[i + H2] = to_bf(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, sn)));
  }
}

}  // namespace

void rope_apply(uint16_t* x, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t H, int64_t HS,
                int sign, void* stream) {
  ops_require(B >= 1 && T >= 1 && H >= 1, "rope_apply", "B, T and H must be >= 1");
  ops_require(HS >= 2 && HS % 2 == 0, "rope_apply", "HS must be even and >= 2");
  ops_require(sign == 1 || sign == -1, "rope_apply", "sign must be +1 or -1");
  const int64_t pairs = B * T * H * (HS / 2);
  rope_kernel<<<stride_grid(pairs), kOpThreads, 0, as_stream(stream)>>>(as_bf(x), cos_t, sin_t, T, H, HS / 2, pairs,
                                                                         float(sign));
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
