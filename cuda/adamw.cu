// adamw.cu — m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; p -= lr*(wd*p + (m/bc1)/(sqrt(v/bc2) + eps)).
//   p, g, m, v (n) fp32, p/m/v in place; p_bf16 (n) bf16 = new p (optional); the gradient used is
//   (g·g_mean)·g_clip, rounded at each product (1/targets and clipping folded in); bc1 = 1 - b1^t, bc2 =
//   1 - b2^t in double on the host, rounded to fp32, as the CPU's. Every operation the CPU's, in its
//   order, rounded as it rounds (__f*_rn: no fused multiply-adds; IEEE sqrt and division).
//   Grid-stride over n (int64); n >= 0 (0: no launch); t >= 1.
#include <cmath>

#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

__global__ void adamw_kernel(float* p, __nv_bfloat16* p_bf16, const float* g, float* m, float* v, int64_t n,
                             float lr, float b1, float b2, float eps, float wd, float bc1, float bc2, float g_mean,
                             float g_clip) {
  const float c1 = 1.0f - b1, c2 = 1.0f - b2;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = __fmul_rn(__fmul_rn(g[i], g_mean), g_clip);
    const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(c1, gi));
    const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(c2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float mhat = __fdiv_rn(mi, bc1), vhat = __fdiv_rn(vi, bc2);
    const float pi = p[i];
    const float step = __fmul_rn(lr, __fadd_rn(__fmul_rn(wd, pi), __fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), eps))));
    const float np = __fsub_rn(pi, step);
    p[i] = np;
    if (p_bf16) p_bf16[i] = to_bf(np);
  }
}

}  // namespace

void adamw_update(float* p, uint16_t* p_bf16, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float g_mean, float g_clip, void* stream) {
  ops_require(n >= 0, "adamw_update", "n < 0");
  ops_require(t >= 1, "adamw_update", "step t must be >= 1");
  if (n == 0) return;
  const float bc1 = float(1.0 - std::pow(double(beta1), double(t)));
  const float bc2 = float(1.0 - std::pow(double(beta2), double(t)));
  adamw_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(p, as_bf(p_bf16), g, m, v, n, lr, beta1, beta2,
                                                                      eps, weight_decay, bc1, bc2, g_mean, g_clip);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
