// mma.cuh — warp-level building blocks of the attention kernels (sm_80+ instructions that Hopper
// runs): cp.async 16-byte copies into a swizzled shared-memory tile, ldmatrix fragment loads, and
// the bf16 m16n8k16 tensor-core mma with fp32 accumulators.
//
// Tiles in shared memory are [rows][HS] bf16; each row is HS/8 chunks of 16 bytes and chunk c of
// row r is stored at chunk c ^ (r & 7), so the 8 row addresses of one ldmatrix hit 8 different
// bank groups (no conflicts).
//
// Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, c = lane % 4):
//   A (16x16, row major): a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..), a3 = (g+8, 2c+8..)
//   B (16x8, "col major"): b0 = (k 2c..2c+1, n g), b1 = (k 2c+8.., n g)
//   C (16x8 fp32):        c0,c1 = (g, 2c..2c+1), c2,c3 = (g+8, 2c..2c+1)
// so two C tiles side by side (n 0..15), converted to bf16 pairs, are exactly an A fragment.
#pragma once

#include <cuda_bf16.h>
#include <cstdint>

namespace longctx::gpu {

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

template <int HS>
__device__ __forceinline__ int swz(int row, int chunk) {  // offset in bf16 elements
  return row * HS + ((chunk ^ (row & 7)) << 3);
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; zero-filled when !valid (src must still be a mapped address).
__device__ __forceinline__ void cp_async16_to(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  cp_async16_to(smem_addr(dst), src, valid);
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Copies rows [row0, row0 + ROWS) of a (rows_total, HS) bf16 matrix with row stride `stride`
// (elements) into a swizzled tile; rows past rows_total become zeros. All threads of the block.
template <int ROWS, int HS, int THREADS>
__device__ __forceinline__ void load_tile(__nv_bfloat16* tile, const __nv_bfloat16* src, int64_t stride,
                                          int64_t row0, int64_t rows_total) {
  constexpr int CHUNKS = HS / 8;
#pragma unroll
  for (int i = threadIdx.x; i < ROWS * CHUNKS; i += THREADS) {
    const int r = i / CHUNKS, c = i % CHUNKS;
    const bool valid = row0 + r < rows_total;
    const __nv_bfloat16* g = valid ? src + (row0 + r) * stride + c * 8 : src;
    cp_async16(tile + swz<HS>(r, c), g, valid);
  }
}

__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// d += a · b, bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment (16 rows x 16 k) of rows [r0, r0+16) and k chunk pair (2kk, 2kk+1) of a tile.
template <int HS>
__device__ __forceinline__ void load_a(uint32_t* a, const __nv_bfloat16* tile, int r0, int kk) {
  const int lane = threadIdx.x & 31;
  ldsm_x4(a, tile + swz<HS>(r0 + (lane & 15), 2 * kk + (lane >> 4)));
}

// B fragments for S = X · Y^T where Y rows are the n index: rows [n0, n0+8) of the tile, k chunks
// 4kk2..4kk2+3 (two k-steps of 16): b[0],b[1] for k-step 2kk2, b[2],b[3] for k-step 2kk2+1.
template <int HS>
__device__ __forceinline__ void load_b_rows(uint32_t* b, const __nv_bfloat16* tile, int n0, int kk2) {
  const int lane = threadIdx.x & 31;
  ldsm_x4(b, tile + swz<HS>(n0 + (lane & 7), 4 * kk2 + (lane >> 3)));
}

// B fragments for O = P · Y where Y rows are the k index (transposed load): rows [k0, k0+16) of
// the tile, columns (n) [8·nc, 8·nc + 16): b[0],b[1] for n-tile nc, b[2],b[3] for n-tile nc+1.
template <int HS>
__device__ __forceinline__ void load_b_cols(uint32_t* b, const __nv_bfloat16* tile, int k0, int nc) {
  const int lane = threadIdx.x & 31;
  ldsm_x4_t(b, tile + swz<HS>(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, nc + (lane >> 4)));
}

}  // namespace longctx::gpu
