// bf16.h — float <-> bfloat16 on the host: the one rounding every host-side file uses.
//
// bf16 is the top half of an IEEE single: sign, 8 exponent bits, 7 mantissa bits. bf16_bits rounds
// to nearest, ties to even (finite values too large round to ±inf, as IEEE rounding does); NaN
// stays NaN (quiet, sign kept) instead of carrying into the exponent. Denormals round like any
// other value. CUDA device code keeps its own intrinsic (__float2bfloat16_rn, the same rounding).
#pragma once

#include <bit>
#include <cstdint>

namespace longctx {

constexpr uint16_t bf16_bits(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN: set quiet bit
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // + half an ulp, minus one on ties to odd
}

constexpr float bf16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// x rounded to the nearest bf16 value, as a float.
constexpr float bf16_round(float x) { return bf16_to_float(bf16_bits(x)); }

}  // namespace longctx
