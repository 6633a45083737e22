// flash_util.cu — the small kernels around flash attention:
//   delta[b,t,h] = sum_d dO·O (fp32 from bf16; one warp per row), the exact (O, LSE) merge of ring
//   partials (one warp per row), fp32 -> bf16. (Shape checks: src/backend/cuda/flash_check.cpp.)
#include <cuda_bf16.h>

#include <cmath>

#include "flash_common.cuh"

namespace longctx::gpu {

bool gpu_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

namespace {

__global__ void delta_kernel(const __nv_bfloat16* o, const __nv_bfloat16* dout, float* delta,
                             FlashShape s) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // (b, t, h)
  const int lane = threadIdx.x & 31;
  if (row >= s.B * s.Tq * s.NH) return;
  const int64_t h = row % s.NH, t = (row / s.NH) % s.Tq, b = row / (s.NH * s.Tq);
  const int64_t off = b * s.q_sb + t * s.q_st + h * s.q_sh;
  float acc = 0.f;
  for (int64_t d = 2 * lane; d < s.HS; d += 64) {
    const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(o + off + d));
    const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + off + d));
    acc += x.x * y.x + x.y * y.y;
  }
  for (int w = 16; w > 0; w /= 2) acc += __shfl_xor_sync(0xffffffff, acc, w);
  if (lane == 0) delta[row] = acc;
}

// One warp per row: every lane reads lse[r] before lane 0 overwrites it.
__global__ void merge_kernel(float* o, float* lse, const float* ob, const float* lb, int64_t rows,
                             int64_t HS) {
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const float a = lse[r], bl = lb[r];
  if (bl == -INFINITY) return;  // the block saw nothing for this row
  const MergeWeights w = merge_weights(a, bl);
  for (int64_t d = lane; d < HS; d += 32) o[r * HS + d] = __fmaf_rn(o[r * HS + d], w.wa, ob[r * HS + d] * w.wb);
  __syncwarp();
  if (lane == 0) lse[r] = w.lse;
}

__global__ void to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void normal_kernel(__nv_bfloat16* x, int64_t n, uint64_t seed, float scale) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  auto mix = [](uint64_t z) {  // SplitMix64 finaliser
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  const uint64_t r = mix(seed ^ mix(uint64_t(i)));
  const float u1 = (float(r >> 40) + 1.0f) * 0x1.0p-24f, u2 = float((r >> 16) & 0xffffff) * 0x1.0p-24f;
  x[i] = __float2bfloat16_rn(scale * sqrtf(-2.f * logf(u1)) * cospif(2.f * u2));
}

unsigned blocks(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace

void flash_delta(const FlashShape& s, const uint16_t* o, const uint16_t* dout, float* delta, void* stream) {
  check_flash_shape(s);
  check_flash_align(o, 16, "o"), check_flash_align(dout, 16, "dout"), check_flash_align(delta, 4, "delta");
  const int64_t rows = s.B * s.Tq * s.NH;
  delta_kernel<<<blocks(rows * 32, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const __nv_bfloat16*>(o), reinterpret_cast<const __nv_bfloat16*>(dout), delta, s);
  CUDA_CHECK(cudaGetLastError());
}

void flash_merge(float* o, float* lse, const float* o_blk, const float* lse_blk, int64_t rows,
                 int64_t HS, void* stream) {
  flash_require(rows >= 0 && HS > 0, "flash_merge: rows < 0 or HS <= 0");
  check_flash_align(o, 4, "o"), check_flash_align(o_blk, 4, "o_blk");
  if (rows == 0) return;  // an empty launch is an error in CUDA
  merge_kernel<<<blocks(rows * 32, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(o, lse, o_blk,
                                                                                        lse_blk, rows, HS);
  CUDA_CHECK(cudaGetLastError());
}

void fill_normal_bf16(uint16_t* x, int64_t n, uint64_t seed, float scale, void* stream) {
  if (n <= 0) return;
  normal_kernel<<<blocks(n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<__nv_bfloat16*>(x), n, seed, scale);
  CUDA_CHECK(cudaGetLastError());
}

void to_bf16(uint16_t* out, const float* in, int64_t n, void* stream) {
  if (n <= 0) return;
  to_bf16_kernel<<<blocks(n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<__nv_bfloat16*>(out), in, n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
