// gemm.cu — matrix products through cuBLASLt (backend/cuda_gemm.h).
//   C(m×n) = beta·C + op(A)·op(B), A/B bf16, fp32 compute (CUBLAS_COMPUTE_32F), C bf16 or fp32.
// Row-major (N, X) data is column-major (X × N) to cuBLAS, so each product is written transposed:
// out(N,O) = in·Wᵀ is outᵀ(O×N) = W·inᵀ, i.e. A = W stored (I×O) with op T, B = in stored (I×N).
// Limits: every dim in [1, 2^31); checked before the call. The heuristic's first algorithm runs;
// it is chosen once per shape (Blas::plan) and kept with the shape's descriptors.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "flash_common.cuh"  // CUDA_CHECK, cuda_fail
#include "longctx/backend/cuda_gemm.h"

namespace longctx::gpu {

void ops_require(bool ok, const char* op, const char* what);

namespace {
void blas_check(cublasStatus_t st, const char* call, const char* file, int line) {
  if (st != CUBLAS_STATUS_SUCCESS) cuda_fail(call, cublasLtGetStatusString(st), file, line);
}
#define BLAS_CHECK(call) blas_check((call), #call, __FILE__, __LINE__)

bool dim_ok(int64_t d) { return d >= 1 && d < (int64_t(1) << 31); }
}  // namespace

Blas::Blas(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t h = nullptr;
  BLAS_CHECK(cublasLtCreate(&h));
  handle_ = h;
  if (workspace_bytes_) CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

Blas::~Blas() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(p.lc));
    cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(p.lb));
    cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(p.la));
    cublasLtMatmulDescDestroy(static_cast<cublasLtMatmulDesc_t>(p.desc));
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

// Key: transA, transB, m, n, k, lda, ldb, ldc, fp32 C, beta != 0 (the heuristic may pick another
// algorithm when C is read).
const Blas::Plan& Blas::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [transA, transB, m, n, k, lda, ldb, ldc, c_f32, with_beta] = key;
  static_assert(sizeof(cublasLtMatmulAlgo_t) <= sizeof(Plan::algo), "Plan::algo too small");
  const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cudaDataType_t ct = c_f32 ? CUDA_R_32F : CUDA_R_16BF;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  BLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  BLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  BLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
  // Layouts of the matrices as stored (before op): rows × cols, column-major, leading dimension.
  BLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, transA ? k : m, transA ? m : k, lda));
  BLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, transB ? n : k, transB ? k : n, ldb));
  BLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, ct, m, n, ldc));
  BLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  BLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const auto h = static_cast<cublasLtHandle_t>(handle_);
  BLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, lc, lc, pref, 1, &result, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  if (found <= 0) {
    cublasLtMatrixLayoutDestroy(lc), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(la);
    cublasLtMatmulDescDestroy(desc);
    ops_require(false, "gemm", "cuBLASLt found no algorithm for this shape");
  }
  Plan p;
  p.desc = desc, p.la = la, p.lb = lb, p.lc = lc;
  std::memcpy(p.algo, &result.algo, sizeof(result.algo));
  return plans_.emplace(key, p).first->second;
}

void Blas::matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const uint16_t* A, int64_t lda,
                  const uint16_t* B, int64_t ldb, void* C, bool c_f32, int64_t ldc, float beta, void* stream) {
  ops_require(dim_ok(m) && dim_ok(n) && dim_ok(k), "gemm", "every dimension must be in [1, 2^31)");
  const Plan& p = plan(Key{transA, transB, m, n, k, lda, ldb, ldc, c_f32, beta != 0.0f});
  cublasLtMatmulAlgo_t algo;
  std::memcpy(&algo, p.algo, sizeof(algo));
  const float alpha = 1.0f;
  const auto lc = static_cast<cublasLtMatrixLayout_t>(p.lc);
  BLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), static_cast<cublasLtMatmulDesc_t>(p.desc), &alpha,
                            A, static_cast<cublasLtMatrixLayout_t>(p.la), B, static_cast<cublasLtMatrixLayout_t>(p.lb),
                            &beta, C, lc, C, lc, &algo, workspace_, workspace_bytes_, static_cast<cudaStream_t>(stream)));
}

void Blas::linear_fwd(void* out, bool out_f32, const uint16_t* in, const uint16_t* W, int64_t N, int64_t I,
                      int64_t O, float beta, void* stream) {
  matmul(true, false, O, N, I, W, I, in, I, out, out_f32, O, beta, stream);  // outᵀ = W · inᵀ
}

void Blas::linear_bwd_data(void* din, bool din_f32, const uint16_t* dout, const uint16_t* W, int64_t N,
                           int64_t I, int64_t O, float beta, void* stream) {
  matmul(false, false, I, N, O, W, I, dout, O, din, din_f32, I, beta, stream);  // dinᵀ = Wᵀ · doutᵀ
}

void Blas::linear_bwd_weight(float* dW, const uint16_t* dout, const uint16_t* in, int64_t N, int64_t I,
                             int64_t O, float beta, void* stream) {
  matmul(false, true, I, O, N, in, I, dout, O, dW, true, I, beta, stream);  // dWᵀ = inᵀ · dout
}

}  // namespace longctx::gpu
