// ops_check.cpp — the host-side error of the small-op launchers (cuda/*.cu of backend/cuda_ops.h),
// compiled by the host compiler so that the .cu files need no fmt. Builds without CUDA too.
#include "longctx/common.h"

namespace longctx::gpu {

void ops_require(bool ok, const char* op, const char* what) {
  CHECK_HINT(ok, "the shapes and limits are documented in include/longctx/backend/cuda_ops.h",
             "gpu::{}: {}", op, what);
}

}  // namespace longctx::gpu
