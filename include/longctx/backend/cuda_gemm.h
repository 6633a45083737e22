// backend/cuda_gemm.h — the model's matrix products on the GPU through cuBLASLt (cuda/gemm.cu):
// bf16 operands, fp32 accumulation, bf16 or fp32 results; the HF weight convention W (O, I).
// Host-callable, no CUDA headers: pointers are device memory, bf16 as uint16_t bits.
//   linear_fwd         out (N, O)  = beta·out + in (N, I) · W (O, I)ᵀ
//   linear_bwd_data    din (N, I)  = beta·din + dout (N, O) · W (O, I)
//   linear_bwd_weight  dW (O, I)   = beta·dW + dout (N, O)ᵀ · in (N, I)      dW fp32 (beta 1: +=)
// `out_f32` chooses an fp32 result (logits, accumulated gradients) over bf16. With beta ≠ 0 the
// epilogue adds beta·C in fp32 and rounds once: a bf16 result then rounds at every accumulation
// (the model's dxn += dq·Wq + dk·Wk + dv·Wv, as bf16 autograd does); weight gradients stay fp32.
// Dims ≥ 1 and < 2^31.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

namespace longctx::gpu {

class Blas {
 public:
  // The cuBLASLt handle and a workspace of `workspace_bytes` (allocated here, once).
  explicit Blas(size_t workspace_bytes = size_t(32) << 20);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  void linear_fwd(void* out, bool out_f32, const uint16_t* in, const uint16_t* W, int64_t N, int64_t I,
                  int64_t O, float beta = 0.0f, void* stream = nullptr);
  void linear_bwd_data(void* din, bool din_f32, const uint16_t* dout, const uint16_t* W, int64_t N, int64_t I,
                       int64_t O, float beta = 0.0f, void* stream = nullptr);
  void linear_bwd_weight(float* dW, const uint16_t* dout, const uint16_t* in, int64_t N, int64_t I, int64_t O,
                         float beta = 1.0f, void* stream = nullptr);

 private:
  // C (m×n, column-major, ldc) = beta·C + op(A) · op(B): cuBLAS's own terms.
  void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const uint16_t* A, int64_t lda,
              const uint16_t* B, int64_t ldb, void* C, bool c_f32, int64_t ldc, float beta, void* stream);
  // The descriptors, layouts and chosen algorithm of each product shape, built on its first call
  // (cuBLASLt's heuristic query costs tens of microseconds of host time, as long as a small
  // product takes on the GPU) and reused: the step loop then only enqueues.
  struct Plan {
    void *desc = nullptr, *la = nullptr, *lb = nullptr, *lc = nullptr;
    unsigned char algo[64] = {};  // cublasLtMatmulAlgo_t, opaque here
  };
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool>;
  const Plan& plan(const Key& k);
  std::map<Key, Plan> plans_;
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace longctx::gpu
