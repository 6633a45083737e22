// swiglu.cu — out = silu(gate) * up;  dgate = dout*up*sig(g)*(1 + g*(1 - sig(g))), dup = dout*silu(g).
//   gate, up, out, dout, dgate, dup (n = N·F) bf16; fp32 math (sig = 1/(1 + expf(-g)), IEEE division),
//   each output rounded to bf16 once; dgate, dup written (=). Saved for backward: gate, up.
//   dgate may alias gate, dup may alias up (each element is read before it is written).
//   Grid-stride over n (int64); n >= 0 (0: no launch).
#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

__global__ void fwd_kernel(__nv_bfloat16* out, const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = bf(gate[i]);
    out[i] = to_bf(__fmul_rn(__fmul_rn(g, sigmoid(g)), bf(up[i])));
  }
}

__global__ void bwd_kernel(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                           const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = bf(gate[i]), u = bf(up[i]), dy = bf(dout[i]), sg = sigmoid(g);
    const float dg = __fmul_rn(__fmul_rn(__fmul_rn(dy, u), sg), __fadd_rn(1.0f, __fmul_rn(g, 1.0f - sg)));
    dup[i] = to_bf(__fmul_rn(__fmul_rn(dy, g), sg));
    dgate[i] = to_bf(dg);
  }
}

}  // namespace

void swiglu_fwd(uint16_t* out, const uint16_t* gate, const uint16_t* up, int64_t n, void* stream) {
  ops_require(n >= 0, "swiglu_fwd", "n < 0");
  if (n == 0) return;
  fwd_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(as_bf(out), as_bf(gate), as_bf(up), n);
  CUDA_CHECK(cudaGetLastError());
}

void swiglu_bwd(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate, const uint16_t* up,
                int64_t n, void* stream) {
  ops_require(n >= 0, "swiglu_bwd", "n < 0");
  if (n == 0) return;
  bwd_kernel<<<stride_grid(n), kOpThreads, 0, as_stream(stream)>>>(as_bf(dgate), as_bf(dup), as_bf(dout),
                                                                    as_bf(gate), as_bf(up), n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
