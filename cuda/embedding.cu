// embedding.cu — out[n] = table[tok[n] - v0] if v0 <= tok[n] < v0 + V else 0;  dtable[tok[n] - v0] += dout[n].
//   table (V, C) bf16, tok (N) int32, out (N, C) bf16; bwd: dout (N, C) bf16 -> dtable (V, C) fp32 (+=).
//   Nothing saved but tok. Backward, deterministic (the CPU's order, so the CPU's bits): key[n] = row
//   (V for tokens outside the slice), a stable cub radix sort of (key, n), then per distinct row one
//   pass over its sorted run adding dout rows in increasing n. Limits (launcher): N, V <= 2^31 - 1,
//   C >= 1; workspace >= embedding_bwd_workspace_bytes(N, V), 256-byte aligned.
#include <cub/device/device_radix_sort.cuh>

#include "ops_common.cuh"

namespace longctx::gpu {

namespace {

constexpr int64_t kAlign = 256;
constexpr int kRunsPerBlock = 32;  // sorted positions one block of the backward checks for run starts

int64_t round_up(int64_t b) { return (b + kAlign - 1) / kAlign * kAlign; }
int key_bits(int64_t V) {  // bits that hold keys 0..V
  int b = 1;
  while (b < 32 && (int64_t(1) << b) <= V) ++b;
  return b;
}
size_t cub_bytes(int64_t N, int64_t V) {
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), int(N), 0, key_bits(V)));
  return bytes;
}

__global__ void fwd_kernel(__nv_bfloat16* out, const int32_t* tok, const __nv_bfloat16* table, int64_t C,
                           int64_t v0, int64_t V) {
  const int64_t n = blockIdx.x, row = int64_t(tok[n]) - v0;
  __nv_bfloat16* o = out + n * C;
  if (row >= 0 && row < V) {
    const __nv_bfloat16* t = table + row * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = t[c];
  } else {
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = __float2bfloat16_rn(0.0f);
  }
}

__global__ void keys_kernel(uint32_t* key, int32_t* val, const int32_t* tok, int64_t N, int64_t v0, int64_t V) {
  const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int64_t row = int64_t(tok[n]) - v0;
  key[n] = uint32_t(row >= 0 && row < V ? row : V);
  val[n] = int32_t(n);
}

// Block b looks at sorted positions [b·kRunsPerBlock, ...); a position that starts a run of one row
// (key < V) adds the run's dout rows into dtable, columns over the block's threads. Every run is
// summed by exactly one block, in sorted (= increasing n) order, starting from dtable's value.
__global__ void bwd_kernel(float* dtable, const __nv_bfloat16* dout, const uint32_t* key, const int32_t* val,
                           int64_t N, int64_t C, int64_t V) {
  const int64_t i0 = int64_t(blockIdx.x) * kRunsPerBlock;
  const int64_t i1 = i0 + kRunsPerBlock < N ? i0 + kRunsPerBlock : N;
  for (int64_t i = i0; i < i1; ++i) {
    const uint32_t k = key[i];
    if (int64_t(k) >= V || (i > 0 && key[i - 1] == k)) continue;  // outside the slice, or not a run start
    int64_t end = i + 1;
    while (end < N && key[end] == k) ++end;
    float* d = dtable + int64_t(k) * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float acc = d[c];
      for (int64_t j = i; j < end; ++j) acc += bf(dout[int64_t(val[j]) * C + c]);
      d[c] = acc;
    }
  }
}

}  // namespace

size_t embedding_bwd_workspace_bytes(int64_t N, int64_t V) {
  ops_require(N >= 0 && N <= kInt32Max && V >= 1 && V < kInt32Max, "embedding_bwd_workspace_bytes",
              "N must be in [0, 2^31) and V in [1, 2^31 - 1)");
  if (N == 0) return 0;
  return size_t(4 * round_up(4 * N)) + size_t(round_up(int64_t(cub_bytes(N, V))));
}

// The four key/value arrays, plus cub's onesweep radix sort of N (key, value) pairs bounded from
// above: the alternate key and value buffers (8·N), the look-back of each tile (256 digits × 4 bytes
// per tile of at least 256 items: <= 4·N + 1 KiB), histograms and counters (a few KiB); 8 MiB covers
// those and the multi-pass spine of the other algorithm (grid blocks × 256 digits × 4 bytes).
size_t embedding_bwd_workspace_bound(int64_t N, int64_t V) {
  ops_require(N >= 0 && N <= kInt32Max && V >= 1 && V < kInt32Max, "embedding_bwd_workspace_bound",
              "N must be in [0, 2^31) and V in [1, 2^31 - 1)");
  if (N == 0) return 0;
  return size_t(4 * round_up(4 * N)) + size_t(round_up(12 * N)) + (size_t(8) << 20);
}

void embedding_fwd(uint16_t* out, const int32_t* tok, const uint16_t* table, int64_t N, int64_t C, int64_t v0,
                   int64_t V, void* stream) {
  ops_require(N >= 0 && N <= kInt32Max, "embedding_fwd", "N must be in [0, 2^31)");
  ops_require(C >= 1 && V >= 1, "embedding_fwd", "C and V must be >= 1");
  if (N == 0) return;
  fwd_kernel<<<unsigned(N), kOpThreads, 0, as_stream(stream)>>>(as_bf(out), tok, as_bf(table), C, v0, V);
  CUDA_CHECK(cudaGetLastError());
}

void embedding_bwd(float* dtable, const uint16_t* dout, const int32_t* tok, int64_t N, int64_t C, int64_t v0,
                   int64_t V, void* workspace, size_t workspace_bytes, void* stream) {
  ops_require(C >= 1, "embedding_bwd", "C must be >= 1");
  const size_t need = embedding_bwd_workspace_bytes(N, V);  // checks N and V
  if (N == 0) return;
  ops_require(workspace != nullptr && workspace_bytes >= need, "embedding_bwd",
              "workspace smaller than embedding_bwd_workspace_bytes(N, V)");
  ops_require(reinterpret_cast<uintptr_t>(workspace) % kAlign == 0, "embedding_bwd",
              "workspace not 256-byte aligned");
  char* ws = static_cast<char*>(workspace);
  const int64_t piece = round_up(4 * N);
  uint32_t* key_in = reinterpret_cast<uint32_t*>(ws);
  uint32_t* key_out = reinterpret_cast<uint32_t*>(ws + piece);
  int32_t* val_in = reinterpret_cast<int32_t*>(ws + 2 * piece);
  int32_t* val_out = reinterpret_cast<int32_t*>(ws + 3 * piece);
  void* temp = ws + 4 * piece;
  size_t temp_bytes = need - size_t(4 * piece);
  cudaStream_t s = as_stream(stream);
  keys_kernel<<<unsigned((N + kOpThreads - 1) / kOpThreads), kOpThreads, 0, s>>>(key_in, val_in, tok, N, v0, V);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, key_in, key_out, val_in, val_out, int(N), 0,
                                             key_bits(V), s));
  bwd_kernel<<<unsigned((N + kRunsPerBlock - 1) / kRunsPerBlock), kOpThreads, 0, s>>>(
      dtable, as_bf(dout), key_out, val_out, N, C, V);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::gpu
