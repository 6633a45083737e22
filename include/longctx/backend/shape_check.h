// backend/shape_check.h — the shape checks every backend makes at its boundary, once per op call,
// so that a wrong view fails with the backend, the op and the tensor named ("cuda::linear_bwd: dW
// has shape (...)") instead of a wrong result.
#pragma once

#include <cstdint>

#include "longctx/common.h"
#include "longctx/tensor.h"

namespace longctx {

// A view of rows × cols elements (any ndim whose leading dimension is rows).
template <class T>
void expect_shape(const Tensor<T>& t, int64_t rows, int64_t cols, const char* backend, const char* op,
                  const char* name) {
  CHECK(t.numel() == rows * cols && (t.ndim < 2 || t.size(0) == rows),
        "{}::{}: {} has shape ({}) with {} elements, expected {} × {}", backend, op, name, t.size(0), t.numel(),
        rows, cols);
}

// Columns of a row-major view (its elements per row; a 1-D view is one row).
template <class T>
int64_t cols_of(const Tensor<T>& t) {
  return t.ndim >= 2 ? t.row_size() : t.numel();
}

struct LinearDims {
  int64_t N, I, O;
};
// linear_bwd's operands: din (N, I), dW (O, I), dout (N, O), in (N, I), W (O, I); din and dW may
// be empty (not asked for), W only without din, in only without dW.
template <class A, class G, class D, class X, class P>
LinearDims linear_bwd_dims(const Tensor<A>& din, const Tensor<G>& dW, const Tensor<D>& dout, const Tensor<X>& in,
                           const Tensor<P>& W, const char* backend) {
  CHECK(dout.ndim == 2, "{}::linear_bwd: dout must be (N, O)", backend);
  CHECK(!din.empty() || !dW.empty(), "{}::linear_bwd: neither din nor dW asked for", backend);
  CHECK(din.empty() || !W.empty(), "{}::linear_bwd: din needs W", backend);
  CHECK(dW.empty() || !in.empty(), "{}::linear_bwd: dW needs the input", backend);
  const LinearDims d{dout.size(0), !W.empty() ? W.row_size() : in.row_size(), dout.size(1)};
  if (!W.empty()) expect_shape(W, d.O, d.I, backend, "linear_bwd", "W");
  if (!din.empty()) expect_shape(din, d.N, d.I, backend, "linear_bwd", "din");
  if (!dW.empty()) expect_shape(dW, d.O, d.I, backend, "linear_bwd", "dW"), expect_shape(in, d.N, d.I, backend, "linear_bwd", "in");
  return d;
}

}  // namespace longctx
