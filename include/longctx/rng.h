// rng.h — deterministic, counter-based random numbers.
//
// Every random draw in longctx is a pure function of integers (seed, stream, index), never of a
// hidden generator state. That makes results independent of how work is split across ranks
// (a tensor slice initialised on any rank gets the same values as on one rank) and makes resume
// bit-identical: the data for step s is drawn from (seed, s, sample), so the checkpoint only needs
// the seed and the step counters.
#pragma once

#include <cmath>
#include <cstdint>

namespace longctx {

// SplitMix64 finaliser: a bijective mix with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline uint64_t hash64(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x632be59bd9b4e019ULL)); }
inline uint64_t hash64(uint64_t a, uint64_t b, uint64_t c) { return hash64(hash64(a, b), c); }
inline uint64_t hash64(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return hash64(hash64(a, b, c), d);
}

// Uniform in [0, 1) with 53 random bits.
inline double uniform01(uint64_t bits) { return double(bits >> 11) * 0x1.0p-53; }

// Standard normal for element `index` of stream `key` (Box–Muller on two hashed uniforms).
inline double normal_at(uint64_t key, uint64_t index) {
  double u1 = uniform01(hash64(key, 2 * index)), u2 = uniform01(hash64(key, 2 * index + 1));
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A small sequential stream for code that draws many values in order (the data generators).
// Its whole state is (key, counter), both plain integers.
struct RandomStream {
  uint64_t key, counter = 0;
  explicit RandomStream(uint64_t k) : key(k) {}
  uint64_t next() { return hash64(key, counter++); }
  // Uniform integer in [0, n), n > 0 (rejection-free multiply-shift; bias < 2^-64 * n).
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next() * n >> 64); }
  double uniform() { return uniform01(next()); }
};

}  // namespace longctx
