// tensor.h — typed views: a pointer, a shape and a dtype, never owning. What travels between the
// model, the backends and the communicators in place of bare float pointers.
//
// Shapes use DESIGN's letters (N rows = B·T, C, NH·HS, ...); row-major, last dimension contiguous.
// Most activations are 2-D (rows, row_size); rows() cuts a block of rows (a chunk of the
// sequence, a ring block) without copying. The memory behind a view belongs to an Arena
// (arena.h), a flat parameter buffer or the caller; whether it is host or device memory is the
// backend's business (backend/cpu.h: host).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "longctx/common.h"

namespace longctx {

// bf16 as stored: the top 16 bits of an IEEE fp32 (bf16.h has the rounding).
struct bf16 {
  uint16_t bits;
};

enum class DType : uint8_t { kF32, kBF16, kF64, kI32, kU8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: case DType::kI32: return 4;
    case DType::kBF16: return 2;
    case DType::kF64: return 8;
    case DType::kU8: return 1;
  }
  return 0;
}
const char* dtype_name(DType t);  // "f32", "bf16", ...

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<bf16>() { return DType::kBF16; }
template <> constexpr DType dtype_of<double>() { return DType::kF64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kU8; }

// Up to 4 dimensions. The element type is T (const T for read-only views); dtype follows from it.
template <class T>
struct Tensor {
  using Elem = std::remove_const_t<T>;
  static constexpr DType dtype = dtype_of<Elem>();

  T* data = nullptr;
  std::array<int64_t, 4> shape{};
  int ndim = 0;

  Tensor() = default;
  Tensor(T* p, std::initializer_list<int64_t> dims) : data(p) {
    LONGCTX_CHECK(dims.size() >= 1 && dims.size() <= 4, "Tensor: {} dimensions (1 to 4)", dims.size());
    for (int64_t d : dims) shape[size_t(ndim++)] = d;
  }
  operator Tensor<const Elem>() const {  // NOLINT: a writable view reads as a read-only one
    Tensor<const Elem> t;
    t.data = data, t.shape = shape, t.ndim = ndim;
    return t;
  }

  int64_t numel() const {
    int64_t n = ndim ? 1 : 0;
    for (int i = 0; i < ndim; ++i) n *= shape[size_t(i)];
    return n;
  }
  int64_t size(int d) const { return shape[size_t(d)]; }
  int64_t row_size() const { return shape[0] ? numel() / shape[0] : 0; }  // elements of dim 0's rows
  size_t bytes() const { return size_t(numel()) * sizeof(Elem); }
  bool empty() const { return numel() == 0; }

  // Rows [r0, r0 + n) of dim 0, the other dimensions unchanged.
  Tensor rows(int64_t r0, int64_t n) const {
    LONGCTX_CHECK(r0 >= 0 && n >= 0 && r0 + n <= shape[0], "Tensor::rows [{}, {}) outside [0, {})", r0,
                  r0 + n, shape[0]);
    Tensor t = *this;
    t.data = data + r0 * row_size(), t.shape[0] = n;
    return t;
  }
  // The same elements under another shape of equal size (e.g. (B·T, NH·HS) as (B, T, NH, HS)).
  Tensor view(std::initializer_list<int64_t> dims) const {
    Tensor t(data, dims);
    LONGCTX_CHECK(t.numel() == numel(), "Tensor::view: {} elements viewed as {}", numel(), t.numel());
    return t;
  }
};

// A flat view of n elements.
template <class T>
Tensor<T> flat(T* p, int64_t n) {
  return Tensor<T>(p, {n});
}

}  // namespace longctx
