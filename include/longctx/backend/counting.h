// backend/counting.h — a backend that only counts: backend B's types (Act, Param), constants and
// op_scratch_bytes formula, no memory and no ops. Model<Counting<B>> gives the arena B's model
// takes at any rank's shapes without a device (longctx plan computes the GPU plan on a login node);
// only the counting members (the constructor, arena_bytes, op_scratch_bytes) are instantiated for
// it (model.cpp, ring_attention.cpp, lm_head.cpp), so no op can be reached through it.
#pragma once

#include <cstddef>
#include <memory>

#include "longctx/backend/cpu.h"

namespace longctx {

template <class B>
struct Counting {
  using Act = typename B::Act;
  using Param = typename B::Param;
  static constexpr const char* kName = B::kName;
  static constexpr bool kHostMemory = B::kHostMemory;
  static constexpr size_t kLogitsBytes = B::kLogitsBytes;
  struct Free {
    void operator()(void*) const {}
  };
  using Memory = std::unique_ptr<void, Free>;  // never holds anything: arena_bytes binds nothing
  static size_t op_scratch_bytes(const ScratchShape& s) { return B::op_scratch_bytes(s); }
};

}  // namespace longctx
