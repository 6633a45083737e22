// elementwise.cu — x.fill_(value) (fp32, bf16); out = (a.float() + b.float()).to(bf16); out = a + b
//   (fp32); x *= s (fp32). All (n) contiguous; add_bf16: the sum in fp32 then rounded to nearest even
//   once. out may alias a or b (each element is read before it is written). Nothing saved; n >= 0 (0: no launch).
//   Grid-stride loops, int64 indices (any n).
#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

template <class T>
__global__ void fill_kernel(T* x, T value, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = value;
}

__global__ void add_bf16_kernel(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = to_bf(bf(a[i]) + bf(b[i]));
}

__global__ void add_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* x, float s, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= s;
}

}  // namespace

void fill_f32(float* x, float value, int64_t n, void* stream) {
  ops_require(n >= 0, "fill_f32", "n < 0");
  if (n == 0) return;
  fill_kernel<float><<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(x, value, n);
  CUDA_CHECK(cudaGetLastError());
}

void fill_bf16(uint16_t* x, float value, int64_t n, void* stream) {
  ops_require(n >= 0, "fill_bf16", "n < 0");
  if (n == 0) return;
  fill_kernel<__nv_bfloat16><<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(
      as_bf(x), __float2bfloat16_rn(value), n);
  CUDA_CHECK(cudaGetLastError());
}

void add_bf16(uint16_t* out, const uint16_t* a, const uint16_t* b, int64_t n, void* stream) {
  ops_require(n >= 0, "add_bf16", "n < 0");
  if (n == 0) return;
  add_bf16_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(as_bf(out), as_bf(a), as_bf(b), n);
  CUDA_CHECK(cudaGetLastError());
}

void add_f32(float* out, const float* a, const float* b, int64_t n, void* stream) {
  ops_require(n >= 0, "add_f32", "n < 0");
  if (n == 0) return;
  add_f32_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(out, a, b, n);
  CUDA_CHECK(cudaGetLastError());
}

void scale_f32(float* x, float s, int64_t n, void* stream) {
  ops_require(n >= 0, "scale_f32", "n < 0");
  if (n == 0) return;
  scale_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(x, s, n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
