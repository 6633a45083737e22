// rope.cpp — rotary position embedding, "rotate half" pairing (i, i + HS/2).
//   x (B, T, H, HS) fp32 in place; pair i at global position p turns by a = p * theta^(-2i/HS):
//   (x1, x2) -> (x1 cos a - x2 sin a, x2 cos a + x1 sin a). Backward turns by -a.
//   Angles in double, then cos/sin rounded to fp32 (tables [T, HS/2]). Nothing saved. HS even.
#include <cmath>

#include "longctx/common.h"
#include "longctx/ops.h"

namespace longctx::cpu {

void rope_table(float* cos_t, float* sin_t, const int64_t* pos, int64_t T, int64_t HS, double theta) {
  CHECK(HS % 2 == 0, "RoPE needs an even head size, got {}", HS);
  const int64_t H2 = HS / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H2; ++i) {
      const double inv_freq = std::pow(theta, -double(2 * i) / double(HS));
      const double a = double(pos[t]) * inv_freq;
      cos_t[t * H2 + i] = float(std::cos(a));
      sin_t[t * H2 + i] = float(std::sin(a));
    }
}

void rope_apply(float* x, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t H,
                int64_t HS, int sign) {
  const int64_t H2 = HS / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* c = cos_t + t * H2;
      const float* s = sin_t + t * H2;
      for (int64_t h = 0; h < H; ++h) {
        float* v = x + ((b * T + t) * H + h) * HS;
        for (int64_t i = 0; i < H2; ++i) {
          const float x1 = v[i], x2 = v[i + H2], sn = sign * s[i];
          v[i] = x1 * c[i] - x2 * sn;
          v[i + H2] = x2 * c[i] + x1 * sn;
        }
      }
    }
}

}  // namespace longctx::cpu
