// rmsnorm.cu — out = in * rstd * w, rstd = 1/sqrt(mean(in^2) + eps);  backward g = rstd*(dout*w) - in*rstd^3*mean(dout*w*in).
//   in, out, dout, din (N, C) bf16; w (C) bf16; rstd (N) fp32 saved for backward (with in); dw (C) fp32 +=;
//   din = g or din + g (bf16, sum in fp32), din32 (N, C) fp32 += g. Row sums in fp32, fixed order.
//   One block per row (fwd and din); dw: column partials over <= 256 row chunks into workspace, then
//   the chunks in order (deterministic). Limits (launcher): 1 <= N <= 2^31 - 1, C >= 1.
#include <cmath>

#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

constexpr int kRowThreads = 256;
constexpr int64_t kMaxChunks = 256, kMinChunkRows = 16;

int64_t chunks_of(int64_t N) {  // row chunks of dw's first pass: a function of N only
  const int64_t c = (N + kMinChunkRows - 1) / kMinChunkRows;
  return c < kMaxChunks ? c : kMaxChunks;
}

__global__ void fwd_kernel(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* in, const __nv_bfloat16* w,
                           int64_t C, float eps) {
  const int64_t n = blockIdx.x;
  const __nv_bfloat16* x = in + n * C;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = bf(x[c]);
    ss += v * v;
  }
  ss = block_reduce(ss, SumOp{}, 0.0f);
  const float r = float(1.0 / sqrt(double(ss) / double(C) + double(eps)));
  if (threadIdx.x == 0) rstd[n] = r;
  __nv_bfloat16* y = out + n * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) y[c] = to_bf(__fmul_rn(__fmul_rn(bf(x[c]), r), bf(w[c])));
}

__global__ void din_kernel(__nv_bfloat16* din, float* din32, const __nv_bfloat16* dout, const __nv_bfloat16* in,
                           const __nv_bfloat16* w, const float* rstd, int64_t C, bool accumulate) {
  const int64_t n = blockIdx.x;
  const __nv_bfloat16 *x = in + n * C, *dy = dout + n * C;
  float dot = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dot += bf(dy[c]) * bf(w[c]) * bf(x[c]);
  dot = block_reduce(dot, SumOp{}, 0.0f);
  const float r = rstd[n];
  const float k = dot / float(C) * r * r * r;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float g = __fsub_rn(__fmul_rn(__fmul_rn(bf(dy[c]), bf(w[c])), r), __fmul_rn(bf(x[c]), k));
    if (din) din[n * C + c] = to_bf(accumulate ? bf(din[n * C + c]) + g : g);
    if (din32) din32[n * C + c] += g;
  }
}

// part[chunk, c] = sum over the chunk's rows, in order, of dout*in*rstd. Grid (column blocks, chunks).
__global__ void dw_partial_kernel(float* part, const __nv_bfloat16* dout, const __nv_bfloat16* in,
                                  const float* rstd, int64_t N, int64_t C, int64_t rows_per_chunk) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;  // no block reduction here
  const int64_t n0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t n1 = n0 + rows_per_chunk < N ? n0 + rows_per_chunk : N;
  float acc = 0.0f;
  for (int64_t n = n0; n < n1; ++n) acc += __fmul_rn(__fmul_rn(bf(dout[n * C + c]), bf(in[n * C + c])), rstd[n]);
  part[int64_t(blockIdx.y) * C + c] = acc;
}

__global__ void dw_final_kernel(float* dw, const float* part, int64_t C, int64_t chunks) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = dw[c];
  for (int64_t k = 0; k < chunks; ++k) acc += part[k * C + c];
  dw[c] = acc;
}

void check_rows(int64_t N, int64_t C, const char* op) {
  ops_require(N >= 1 && N <= kInt32Max, op, "N must be in [1, 2^31)");
  ops_require(C >= 1, op, "C must be >= 1");
}

}  // namespace

size_t rmsnorm_bwd_workspace_bytes(int64_t N, int64_t C) {
  check_rows(N, C, "rmsnorm_bwd_workspace_bytes");
  return size_t(chunks_of(N) * C) * sizeof(float);
}

void rmsnorm_fwd(uint16_t* out, float* rstd, const uint16_t* in, const uint16_t* w, int64_t N, int64_t C,
                 float eps, void* stream) {
  check_rows(N, C, "rmsnorm_fwd");
  fwd_kernel<<<unsigned(N), kRowThreads, 0, as_stream(stream)>>>(as_bf(out), rstd, as_bf(in), as_bf(w), C, eps);
  CUDA_CHECK(cudaGetLastError());
}

void rmsnorm_bwd(uint16_t* din, float* din32, float* dw, const uint16_t* dout, const uint16_t* in,
                 const uint16_t* w, const float* rstd, int64_t N, int64_t C, bool accumulate_din,
                 void* workspace, size_t workspace_bytes, void* stream) {
  check_rows(N, C, "rmsnorm_bwd");
  cudaStream_t s = as_stream(stream);
  if (din || din32) {
    din_kernel<<<unsigned(N), kRowThreads, 0, s>>>(as_bf(din), din32, as_bf(dout), as_bf(in), as_bf(w), rstd, C,
                                                   accumulate_din);
    CUDA_CHECK(cudaGetLastError());
  }
  if (!dw) return;
  ops_require(workspace != nullptr && workspace_bytes >= rmsnorm_bwd_workspace_bytes(N, C), "rmsnorm_bwd",
              "workspace smaller than rmsnorm_bwd_workspace_bytes(N, C)");
  ops_require(reinterpret_cast<uintptr_t>(workspace) % 4 == 0, "rmsnorm_bwd", "workspace not 4-byte aligned");
  const int64_t chunks = chunks_of(N), rows_per_chunk = (N + chunks - 1) / chunks;
  ops_require((C + kOpThreads - 1) / kOpThreads <= kInt32Max, "rmsnorm_bwd", "C too large");
  float* part = static_cast<float*>(workspace);
  const unsigned cblocks = unsigned((C + kOpThreads - 1) / kOpThreads);
  dw_partial_kernel<<<dim3(cblocks, unsigned(chunks)), kOpThreads, 0, s>>>(part, as_bf(dout), as_bf(in), rstd, N,
                                                                            C, rows_per_chunk);
  CUDA_CHECK(cudaGetLastError());
  dw_final_kernel<<<cblocks, kOpThreads, 0, s>>>(dw, part, C, chunks);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
