// embedding.cpp — out[n, :] = table[tok[n], :]; table (V, C), tok (N) int32 (checked < V upstream).
//   bwd: dtable[tok[n], :] += dout[n, :], rows in order n = 0..N-1 (deterministic).
#include <cstring>

#include "longctx/ops.h"

namespace longctx::cpu {

void embedding_fwd(float* out, const int32_t* tok, const float* table, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n)
    std::memcpy(out + n * C, table + int64_t(tok[n]) * C, sizeof(float) * size_t(C));
}

void embedding_bwd(float* dtable, const float* dout, const int32_t* tok, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    float* d = dtable + int64_t(tok[n]) * C;
    const float* g = dout + n * C;
    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
  }
}

}  // namespace longctx::cpu
