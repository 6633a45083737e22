// sum_squares.cu — out[0] = ((x·s).double() ** 2).sum(), x (n) fp32 -> one double (device), written
//   (=); x·s is rounded to fp32 (the bits of scaling x first). Each square is exact in double (24-bit
//   mantissas); pass 1: a FIXED grid of kBlocks blocks, each
//   thread summing (x[i]·s)², i = tid + k·(kBlocks·256), then a block reduction into workspace[block];
//   pass 2: one block adds the kBlocks partials. The order depends on nothing but n: deterministic.
//   workspace: kBlocks doubles (sum_squares_workspace_bytes()). Nothing saved; n >= 0 (0 gives 0).
#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

constexpr int kBlocks = 512, kThreads = 256;

__global__ void partial_kernel(double* part, const float* x, int64_t n, float s) {
  double acc = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(kBlocks) * kThreads) {
    const double v = __fmul_rn(x[i], s);
    acc += v * v;
  }
  acc = block_reduce(acc, SumOp{}, 0.0);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

__global__ void final_kernel(double* out, const double* part) {  // kBlocks threads
  const double acc = block_reduce(part[threadIdx.x], SumOp{}, 0.0);
  if (threadIdx.x == 0) out[0] = acc;
}

}  // namespace

size_t sum_squares_workspace_bytes() { return sizeof(double) * kBlocks; }

void sum_squares(double* out, const float* x, int64_t n, float s, void* workspace, size_t workspace_bytes,
                 void* stream) {
  ops_require(n >= 0, "sum_squares", "n < 0");
  ops_require(workspace != nullptr && workspace_bytes >= sum_squares_workspace_bytes(), "sum_squares",
              "workspace smaller than sum_squares_workspace_bytes()");
  ops_require(reinterpret_cast<uintptr_t>(workspace) % 8 == 0, "sum_squares", "workspace not 8-byte aligned");
  double* part = static_cast<double*>(workspace);
  partial_kernel<<<kBlocks, kThreads, 0, as_stream(stream)>>>(part, x, n, s);  // n = 0: zero partials
  CUDA_CHECK(cudaGetLastError());
  final_kernel<<<1, kBlocks, 0, as_stream(stream)>>>(out, part);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
