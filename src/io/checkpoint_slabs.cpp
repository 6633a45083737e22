// checkpoint_slabs.cpp — flat_range_slabs: a flat element range [lo, hi) of an N-D tensor as at
// most 2·N−1 rectangular blocks (how a ZeRO shard of the flat buffer lands in each tensor).
#include "longctx/checkpoint.h"
#include <fmt/ranges.h>

#include "longctx/common.h"

namespace longctx {

// ---- flat range -> slabs ----------------------------------------------------------------------

namespace {
// Elements [lo, hi) of the sub-array shape[d..] whose leading indices are fixed to `prefix`.
void slabs_of(const std::vector<int64_t>& shape, size_t d, int64_t lo, int64_t hi,
              std::vector<int64_t>& prefix, std::vector<Slab>& out) {
  if (lo >= hi) return;
  const size_t nd = shape.size();
  auto emit = [&](int64_t first, int64_t n) {  // rows [first, first + n) of dimension d, whole
    Slab s{prefix, std::vector<int64_t>(d, 1)};
    s.start.push_back(first), s.count.push_back(n);
    for (size_t k = d + 1; k < nd; ++k) s.start.push_back(0), s.count.push_back(shape[k]);
    out.push_back(std::move(s));
  };
  if (d + 1 == nd) return emit(lo, hi - lo);
  int64_t inner = 1;  // elements per index of dimension d
  for (size_t k = d + 1; k < nd; ++k) inner *= shape[k];
  auto sub = [&](int64_t row, int64_t a, int64_t b) {  // part [a, b) of one row
    prefix.push_back(row);
    slabs_of(shape, d + 1, a, b, prefix, out);
    prefix.pop_back();
  };
  int64_t r0 = lo / inner;
  const int64_t r1 = hi / inner;
  if (r0 == (hi - 1) / inner && (lo % inner != 0 || hi % inner != 0))
    return sub(r0, lo - r0 * inner, hi - r0 * inner);     // inside one row
  if (lo % inner != 0) sub(r0, lo % inner, inner), ++r0;  // partial leading row
  if (r1 > r0) emit(r0, r1 - r0);                         // whole rows
  if (hi % inner != 0) sub(r1, 0, hi % inner);            // partial trailing row
}
}  // namespace

std::vector<Slab> flat_range_slabs(const std::vector<int64_t>& shape, int64_t lo, int64_t hi) {
  CHECK(!shape.empty(), "flat_range_slabs: a tensor needs at least one dimension");
  int64_t n = 1;
  for (int64_t d : shape) {
    CHECK(d > 0, "flat_range_slabs: empty dimension in shape [{}]", fmt::join(shape, ","));
    n *= d;
  }
  CHECK(0 <= lo && lo <= hi && hi <= n, "flat_range_slabs: range [{}, {}) outside [0, {})", lo, hi,
        n);
  std::vector<Slab> out;
  std::vector<int64_t> prefix;
  slabs_of(shape, 0, lo, hi, prefix, out);
  return out;
}

}  // namespace longctx
