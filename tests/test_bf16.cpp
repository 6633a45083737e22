// test_bf16.cpp — include/longctx/bf16.h (the one host-side float -> bf16 rounding) against a
// reference computed independently in double: ties to even, NaN, ±inf, overflow, denormals, every
// bf16 value with the rounding-critical low halves, and many random bit patterns.
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>

#include "catch.h"
#include "longctx/bf16.h"
#include "util.h"

using namespace longctx;

namespace {

static_assert(bf16_bits(1.0f) == 0x3f80 && bf16_to_float(0x3f80) == 1.0f);  // usable in constexpr

// Round-to-nearest-even to 8 significant bits with float's exponent range, in double: the bf16
// value nearest x as a float, ±inf past the largest, NaN for NaN. Written apart from bf16.h.
float reference(float x) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0f) return x;
  const int e = std::max(std::ilogb(x), -126);  // below 2^-126 the spacing stays 2^-133
  const double ulp = std::ldexp(1.0, e - 7);
  const double r = std::nearbyint(double(x) / ulp) * ulp;  // exact: a power-of-2 scale
  if (std::fabs(r) >= 0x1p128) return std::copysign(INFINITY, x);
  return float(r);
}

// bf16_bits(x) must be the top half of the reference and the reference's low half must be 0.
bool agrees(float x) {
  const uint16_t got = bf16_bits(x);
  const float ref = reference(x);
  if (std::isnan(x)) {
    const bool nan = (got & 0x7f80) == 0x7f80 && (got & 0x7f) != 0;
    return nan && (got >> 15) == (std::bit_cast<uint32_t>(x) >> 31);  // NaN, sign kept
  }
  const uint32_t r = std::bit_cast<uint32_t>(ref);
  return (r & 0xffffu) == 0 && got == uint16_t(r >> 16) &&
         std::bit_cast<uint32_t>(bf16_round(x)) == r;
}

uint16_t bits_of(uint32_t u) { return bf16_bits(std::bit_cast<float>(u)); }

}  // namespace

TEST_CASE("bf16: ties to even, NaN, inf, overflow and denormals", "[op]") {
  // Halfway between 1 and 1 + 2^-7 goes down to the even 1; halfway above 1 + 2^-7 goes up.
  CHECK(bits_of(0x3f808000u) == 0x3f80);
  CHECK(bits_of(0x3f818000u) == 0x3f82);
  CHECK(bits_of(0x3f808001u) == 0x3f81);  // just above halfway: up
  CHECK(bits_of(0x3f817fffu) == 0x3f81);  // just below halfway: down
  CHECK(bits_of(0xbf808000u) == 0xbf80);  // negative ties too
  // NaN stays NaN (quiet, sign kept), even when its payload sits only in the low half.
  CHECK(bits_of(0x7fc00000u) == 0x7fc0);
  CHECK(bits_of(0x7f800001u) == 0x7fc0);
  CHECK(bits_of(0xff800001u) == 0xffc0);
  CHECK(bits_of(0x7fffffffu) == 0x7fff);
  CHECK(std::isnan(bf16_round(NAN)));
  // Infinities stay; finite values past the largest bf16 plus half an ulp round to inf.
  CHECK(bits_of(0x7f800000u) == 0x7f80);
  CHECK(bits_of(0xff800000u) == 0xff80);
  CHECK(bits_of(0x7f7fffffu) == 0x7f80);  // FLT_MAX
  CHECK(bits_of(0x7f7f8000u) == 0x7f80);  // tie at the top: 0x7f7f is odd, so up, to inf
  CHECK(bits_of(0x7f7f7fffu) == 0x7f7f);  // the largest finite bf16
  CHECK(bits_of(0xff7fffffu) == 0xff80);
  // Denormals round on the same grid (spacing 2^-133), to ±0 or up into the normals.
  CHECK(bits_of(0x00000001u) == 0x0000);
  CHECK(bits_of(0x00008000u) == 0x0000);  // tie: even 0
  CHECK(bits_of(0x00018000u) == 0x0002);  // tie: even 2
  CHECK(bits_of(0x00010000u) == 0x0001);
  CHECK(bits_of(0x807fffffu) == 0x8080);  // largest negative denormal -> -2^-126
  CHECK(bits_of(0x80000001u) == 0x8000);  // -0 keeps its sign
  CHECK(bits_of(0x00000000u) == 0x0000);
  CHECK(bits_of(0x80000000u) == 0x8000);
  // Every bf16 value converts to float and back unchanged (NaN to a NaN).
  int64_t bad = 0;
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = bf16_to_float(uint16_t(b));
    bad += std::isnan(f) ? !std::isnan(bf16_round(f)) : bf16_bits(f) != b;
  }
  CHECK(bad == 0);
}

TEST_CASE("bf16: agrees with a double-based rounding on every exponent and many random floats",
          "[op]") {
  // Every top half with the low halves where rounding turns: 0, just below, at and above the tie,
  // all ones (exponent carries, overflow, denormal to normal).
  int64_t bad = 0;
  for (uint32_t hi = 0; hi < 0x10000u; ++hi)
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xfffeu, 0xffffu})
      bad += !agrees(std::bit_cast<float>(hi << 16 | lo));
  CHECK(bad == 0);
  // Random bit patterns: every class (normals, denormals, NaN, inf) in proportion to its share.
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937 gen(static_cast<uint32_t>(seed));
  bad = 0;
  for (int i = 0; i < (1 << 22); ++i) bad += !agrees(std::bit_cast<float>(uint32_t(gen())));
  CHECK(bad == 0);
}
