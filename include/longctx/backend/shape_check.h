// backend/shape_check.h — the shape checks every backend makes at its boundary, once per op call,
// so that a wrong view fails with the backend, the op and the tensor named ("cuda::linear_bwd: dW
// has shape (...)") instead of a wrong result.
#pragma once

#include <cstdint>

#include "longctx/common.h"
#include "longctx/ops.h"
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

// Attention of query rows against one key/value block (ops.h: AttnShape): q, o, dq, dout
// (B·Tq, NH·HS); k, v, dk, dv (B·Tk, NKV·HS); lse, delta (B·Tq, NH). Empty views are not checked.
template <class Q, class K>
void check_attention(const cpu::AttnShape& s, const char* backend, const char* op, std::initializer_list<Q> qs,
                     std::initializer_list<K> ks, std::initializer_list<Tensor<const float>> stats,
                     std::initializer_list<const char*> names) {
  const int64_t rows = s.B * s.Tq, keys = s.B * s.Tk;
  const char* const* name = names.begin();
  for (const auto& t : qs) expect_shape(t, rows, s.NH * s.HS, backend, op, *name++);
  for (const auto& t : ks) expect_shape(t, keys, s.NKV * s.HS, backend, op, *name++);
  for (const auto& t : stats) expect_shape(t, rows, s.NH, backend, op, *name++);
}

// The cross-entropy pieces' per-row tensors all have `rows` elements (loss and top1 may be empty);
// acc, when given, holds the 2 running sums.
template <class... T>
void check_rows(int64_t rows, const char* backend, const char* op, const T&... t) {
  CHECK(((t.numel() == rows) && ...), "{}::{}: row counts differ (expected {} rows)", backend, op, rows);
}

}  // namespace longctx
