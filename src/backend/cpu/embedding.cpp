// embedding.cpp — out[n, :] = table[tok[n] - v0, :] for tokens in the slice [v0, v0 + V), else 0.
//   table (V, C) fp32, tok (N) int32 (checked < vocab_size upstream), out (N, C).
//   bwd: dtable[tok[n] - v0, :] += dout[n, :], rows in order n = 0..N-1 (deterministic).
#include <algorithm>
#include <cstring>

#include "longctx/ops.h"

namespace longctx::cpu {

void embedding_fwd(float* out, const int32_t* tok, const float* table, int64_t N, int64_t C,
                   int64_t v0, int64_t V) {
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = int64_t(tok[n]) - v0;
    if (row >= 0 && row < V) std::memcpy(out + n * C, table + row * C, sizeof(float) * size_t(C));
    else std::fill_n(out + n * C, C, 0.0f);
  }
}

void embedding_bwd(float* dtable, const float* dout, const int32_t* tok, int64_t N, int64_t C,
                   int64_t v0, int64_t V) {
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = int64_t(tok[n]) - v0;
    if (row < 0 || row >= V) continue;
    float* d = dtable + row * C;
    const float* g = dout + n * C;
    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
  }
}

}  // namespace longctx::cpu
