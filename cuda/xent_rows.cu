// xent_rows.cu — the LM head's per-row outputs from the tp-reduced row statistics, and their sum:
//   l[r] = mx[r] + log(sum[r]) - zt[r] where target[r] >= 0, else 0 (double math, loss[r] = fp32 l)
//   top1[r] = target[r] >= 0 && zt[r] == double(mx[r]);   acc[0] += Σ l, acc[1] += #targets
// mx (rows) fp32, sum/zt (rows) f64, target (rows) int32; loss/top1 optional. The sum runs over a
// FIXED grid then one block (deterministic, not the CPU's row order). workspace: kBlocks × 2 f64.
#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

constexpr int kBlocks = 256, kThreads = 256;

__global__ void rows_kernel(double* part, const float* mx, const double* sum, const double* zt, const int32_t* target,
                            int64_t rows, float* loss, uint8_t* top1) {
  double l_acc = 0.0, n_acc = 0.0;
  for (int64_t r = int64_t(blockIdx.x) * kThreads + threadIdx.x; r < rows; r += int64_t(kBlocks) * kThreads) {
    const bool has = target[r] >= 0;
    const double l = has ? double(mx[r]) + log(sum[r]) - zt[r] : 0.0;
    if (has) l_acc += l, n_acc += 1.0;
    if (loss) loss[r] = float(l);
    if (top1) top1[r] = has && zt[r] == double(mx[r]);
  }
  l_acc = block_reduce(l_acc, SumOp{}, 0.0);
  n_acc = block_reduce(n_acc, SumOp{}, 0.0);
  if (threadIdx.x == 0) part[2 * blockIdx.x] = l_acc, part[2 * blockIdx.x + 1] = n_acc;
}

__global__ void add_kernel(double* acc, const double* part) {  // kBlocks threads
  const double l = block_reduce(part[2 * threadIdx.x], SumOp{}, 0.0);
  const double n = block_reduce(part[2 * threadIdx.x + 1], SumOp{}, 0.0);
  if (threadIdx.x == 0) acc[0] += l, acc[1] += n;
}

}  // namespace

size_t xent_rows_workspace_bytes() { return sizeof(double) * 2 * kBlocks; }

void xent_rows(const float* mx, const double* sum, const double* zt, const int32_t* target, int64_t rows,
               float* loss, uint8_t* top1, double* acc, void* workspace, size_t workspace_bytes, void* stream) {
  ops_require(rows >= 0 && rows <= kInt32Max, "xent_rows", "rows outside [0, 2^31)");
  ops_require(acc != nullptr, "xent_rows", "acc (2 doubles: loss sum, count) is null");
  ops_require(workspace != nullptr && workspace_bytes >= xent_rows_workspace_bytes(), "xent_rows",
              "workspace smaller than xent_rows_workspace_bytes()");
  ops_require(reinterpret_cast<uintptr_t>(workspace) % 8 == 0, "xent_rows", "workspace not 8-byte aligned");
  double* part = static_cast<double*>(workspace);
  rows_kernel<<<kBlocks, kThreads, 0, as_stream(stream)>>>(part, mx, sum, zt, target, rows, loss, top1);
  CUDA_CHECK(cudaGetLastError());
  add_kernel<<<1, kBlocks, 0, as_stream(stream)>>>(acc, part);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
