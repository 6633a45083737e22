// linear.cpp — out = in @ W^T (W is [O, I], Hugging Face layout), through OpenBLAS sgemm.
//   fwd: in (N, I) fp32, W (O, I) -> out (N, O).   bwd: din = dout @ W, dW += dout^T @ in.
//   Saved for backward: in (the caller keeps it). Limits: none beyond BLAS's int dims (checked).
#include <cblas.h>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx::cpu {

static int blas_dim(int64_t d) {
  CHECK(d >= 0 && d < (int64_t(1) << 31), "matrix dimension {} exceeds the BLAS int range", d);
  return int(d);
}

void linear_fwd(float* out, const float* in, const float* W, int64_t N, int64_t I, int64_t O) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(N), blas_dim(O), blas_dim(I), 1.0f,
              in, blas_dim(I), W, blas_dim(I), 0.0f, out, blas_dim(O));
}

void linear_bwd(float* din, float* dW, const float* dout, const float* in, const float* W,
                int64_t N, int64_t I, int64_t O, bool accumulate_din) {
  if (din)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(N), blas_dim(I), blas_dim(O),
                1.0f, dout, blas_dim(O), W, blas_dim(I), accumulate_din ? 1.0f : 0.0f, din,
                blas_dim(I));
  if (dW)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blas_dim(O), blas_dim(I), blas_dim(N),
                1.0f, dout, blas_dim(O), in, blas_dim(I), 1.0f, dW, blas_dim(I));
}

}  // namespace longctx::cpu
