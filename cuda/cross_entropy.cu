// cross_entropy.cu — mx = z.max(-1); sum = exp(z - mx).sum(-1) (double); zt = z[target - v0]; z = scale*(softmax - onehot).
//   z (rows, V) fp32 logits of the slice [v0, v0 + V); target (rows) int32, -1 = none; mx (rows) fp32,
//   sum, zt (rows) double. exp in fp32 (expf), summed in double in a fixed order (thread strides, then
//   a block reduction): deterministic. xent_grad writes z in place from the global mx, sum;
//   xent_grad_bf16 writes the same values rounded to bf16 into dz, z unchanged (not grad, then cast).
//   One block of 512 threads per row. Limits (launcher): 1 <= rows <= 2^31 - 1, V >= 1.
#include <cmath>

#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

constexpr int kRowThreads = 512;

__global__ void max_kernel(const float* z, int64_t V, float* mx) {
  const float* zr = z + int64_t(blockIdx.x) * V;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, zr[j]);
  m = block_reduce(m, MaxOp{}, -INFINITY);
  if (threadIdx.x == 0) mx[blockIdx.x] = m;
}

__global__ void sum_kernel(const float* z, int64_t V, const float* mx, const int32_t* target, int64_t v0,
                           double* sum, double* zt) {
  const int64_t r = blockIdx.x;
  const float* zr = z + r * V;
  const float m = mx[r];
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += double(expf(zr[j] - m));
  s = block_reduce(s, SumOp{}, 0.0);
  if (threadIdx.x == 0) {
    sum[r] = s;
    const int64_t t = int64_t(target[r]) - v0;
    zt[r] = (target[r] >= 0 && t >= 0 && t < V) ? double(zr[t]) : 0.0;
  }
}

__device__ __forceinline__ void put(float* p, float g) { *p = g; }
__device__ __forceinline__ void put(__nv_bfloat16* p, float g) { *p = to_bf(g); }

// out (rows, V): z itself (Out = float, in place) or a bf16 gradient.
template <class Out>
__global__ void grad_kernel(const float* z, Out* out, int64_t V, const float* mx, const double* sum,
                            const int32_t* target, int64_t v0, float scale) {
  const int64_t r = blockIdx.x;
  const float* zr = z + r * V;
  Out* outr = out + r * V;
  if (target[r] < 0) {  // uniform over the block; no block reduction below
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) put(outr + j, 0.0f);
    return;
  }
  const float k = float(double(scale) / sum[r]), m = mx[r];
  const int64_t t = int64_t(target[r]) - v0;  // may lie outside [0, V): then no j matches
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float g = __fmul_rn(expf(zr[j] - m), k);
    if (j == t) g = __fsub_rn(g, scale);
    put(outr + j, g);
  }
}

void check(int64_t rows, int64_t V, const char* op) {
  ops_require(rows >= 1 && rows <= kInt32Max, op, "rows must be in [1, 2^31)");
  ops_require(V >= 1, op, "V must be >= 1");
}

}  // namespace

void xent_row_max(const float* z, int64_t rows, int64_t V, float* mx, void* stream) {
  check(rows, V, "xent_row_max");
  max_kernel<<<unsigned(rows), kRowThreads, 0, as_stream(stream)>>>(z, V, mx);
  CUDA_CHECK(cudaGetLastError());
}

void xent_row_sum(const float* z, int64_t rows, int64_t V, const float* mx, const int32_t* target, int64_t v0,
                  double* sum, double* zt, void* stream) {
  check(rows, V, "xent_row_sum");
  sum_kernel<<<unsigned(rows), kRowThreads, 0, as_stream(stream)>>>(z, V, mx, target, v0, sum, zt);
  CUDA_CHECK(cudaGetLastError());
}

void xent_grad(float* z, int64_t rows, int64_t V, const float* mx, const double* sum, const int32_t* target,
               int64_t v0, float scale, void* stream) {
  check(rows, V, "xent_grad");
  grad_kernel<<<unsigned(rows), kRowThreads, 0, as_stream(stream)>>>(z, z, V, mx, sum, target, v0, scale);
  CUDA_CHECK(cudaGetLastError());
}

void xent_grad_bf16(uint16_t* dz, const float* z, int64_t rows, int64_t V, const float* mx, const double* sum,
                    const int32_t* target, int64_t v0, float scale, void* stream) {
  check(rows, V, "xent_grad_bf16");
  grad_kernel<<<unsigned(rows), kRowThreads, 0, as_stream(stream)>>>(z, as_bf(dz), V, mx, sum, target, v0, scale);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
