// arena.h — one block of memory per owner (the model's activations, the ring's buffers, the
// engine's shards), counted before it is allocated and handed out as typed views.
//
// Use it in two passes over the same code: a counting arena (no memory) records what every
// take() asks for, the owner checks the total against the memory plan and allocates it through
// its backend, then a bound arena replays the same takes and returns views into that block. Every
// view starts on a 256-byte boundary (cuBLASLt, TMA and vector loads want it; an odd row count
// must not misalign the buffers after it). Nothing is allocated in the step loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "longctx/tensor.h"

namespace longctx {

class Arena {
 public:
  static constexpr size_t kAlign = 256;

  Arena() = default;                                    // counting: take() returns null views
  Arena(void* base, size_t capacity) : base_(static_cast<char*>(base)), cap_(capacity) {}

  template <class T>
  Tensor<T> take(std::initializer_list<int64_t> shape) {
    Tensor<T> t(nullptr, shape);
    LONGCTX_CHECK(t.numel() >= 0, "Arena::take: negative size");
    const size_t at = used_;
    used_ += round_up(t.bytes());
    if (base_) {
      LONGCTX_CHECK(used_ <= cap_, "Arena: {} bytes taken from a block of {} (the counting pass and "
                    "the binding pass asked for different buffers)", used_, cap_);
      t.data = reinterpret_cast<T*>(base_ + at);
    }
    return t;
  }
  size_t bytes() const { return used_; }  // taken so far, with alignment padding
  bool counting() const { return base_ == nullptr; }

  static size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

 private:
  char* base_ = nullptr;
  size_t cap_ = 0, used_ = 0;
};

}  // namespace longctx
