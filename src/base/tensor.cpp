// tensor.cpp — dtype names for messages (tensor.h).
#include "longctx/tensor.h"

namespace longctx {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF64: return "f64";
    case DType::kI32: return "i32";
    case DType::kU8: return "u8";
  }
  return "?";
}

}  // namespace longctx
