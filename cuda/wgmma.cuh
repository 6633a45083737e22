// wgmma.cuh — sm_90a warpgroup MMA building blocks (generated shapes): shared-memory matrix
// descriptors for 128-byte-swizzled tiles, wgmma with both operands in shared memory (ss) or A in
// registers (rs), and the fences around them. Tiles are panels of 64 bf16 columns (128-byte rows);
// within each 8-row group (1024 bytes, 1024-aligned) 16-byte chunk c of row r sits at c ^ (r & 7):
// the hardware's 128B swizzle, so the descriptors below read them directly.
#pragma once

#include <cstdint>

#include "mma.cuh"

namespace longctx::gpu {

// Offset (elements) of (row r, 16-byte chunk c) in a tile of R rows stored as 64-column panels.
template <int R>
__device__ __forceinline__ int sw128(int r, int c) {
  return (c >> 3) * R * 64 + r * 64 + (((c & 7) ^ (r & 7)) << 3);
}

// Rows [row0, row0 + R) of a (rows_total, HS) bf16 matrix (row stride `stride` elements) into a
// swizzled panel tile by cp.async; rows past the end are zero-filled.
template <int R, int HS, int THREADS>
__device__ __forceinline__ void load_sw128(__nv_bfloat16* tile, const __nv_bfloat16* src, int64_t stride,
                                           int64_t row0, int64_t rows_total) {
  constexpr int CH = HS / 8;
  for (int i = threadIdx.x; i < R * CH; i += THREADS) {
    const int r = i / CH, c = i % CH;
    const bool valid = row0 + r < rows_total;
    cp_async16(tile + sw128<R>(r, c), valid ? src + (row0 + r) * stride + c * 8 : src, valid);
  }
}

// load_sw128 for the loads inside a kernel's loop: each thread's rows, chunk and tile offset are
// fixed once, so a load is a few adds per 16-byte copy (load_sw128's generic loop and 64-bit
// index arithmetic cost ~25 instructions per copy, a fifth of the backward's instructions).
// Thread t copies chunk t % CH of rows t / CH + j·RSTEP; RSTEP is a multiple of 8, so every row
// of a thread has the same swizzle and its tile offset grows by RSTEP rows per pass.
template <int R, int HS, int THREADS>
struct TileLoader {
  static constexpr int CH = HS / 8, RSTEP = THREADS / CH, PASSES = R * CH / THREADS;
  static_assert(THREADS % CH == 0 && RSTEP % 8 == 0 && (R * CH) % THREADS == 0, "rows per pass");
  int64_t stride;  // of the source rows, in elements
  int row;         // this thread's first row in the tile
  uint32_t soff;   // and its chunk's byte offset in the tile
  int col;         // the chunk's first column
  __device__ explicit TileLoader(int64_t stride_) : stride(stride_) {
    const int c = threadIdx.x % CH;
    row = threadIdx.x / CH, col = c * 8, soff = uint32_t(sw128<R>(row, c)) * 2;
  }
  __device__ __forceinline__ void operator()(__nv_bfloat16* tile, const __nv_bfloat16* src, int64_t row0,
                                             int64_t rows_total) const {
    const __nv_bfloat16* p = src + (row0 + row) * stride + col;
    const uint32_t dst = smem_addr(tile) + soff;
    const int64_t left = rows_total - row0 - row;  // rows of this thread's column still in range
#pragma unroll
    for (int j = 0; j < PASSES; ++j) {
      const bool valid = j * RSTEP < left;
      cp_async16_to(dst + j * RSTEP * 128, valid ? p + j * RSTEP * stride : src, valid);
    }
  }
};

// The first 1024-byte aligned byte of a dynamic shared-memory array (the 128B-swizzle descriptors
// need 1024-aligned 8-row groups). Offsetting the array itself, rather than rounding its address
// as an integer, keeps the result in the compiler's view of the shared space, so plain C++ loads
// and stores through it become ld.shared/st.shared instead of generic accesses.
__device__ __forceinline__ unsigned char* align1024(unsigned char* smem) {
  return smem + ((1024u - (smem_addr(smem) & 1023u)) & 1023u);
}

// Descriptor: start address, leading/stride byte offsets, 128B swizzle (layout type 1).
__device__ __forceinline__ uint64_t smem_desc(const void* p, uint32_t lbo, uint32_t sbo) {
  const uint64_t a = smem_addr(p);
  return ((a & 0x3FFFF) >> 4) | (uint64_t((lbo >> 4) & 0x3FFF) << 16) |
         (uint64_t((sbo >> 4) & 0x3FFF) << 32) | (uint64_t(1) << 62);
}
// The descriptor of the tile `bytes` (a multiple of 16) after d's: the start address is d's low
// 14 bits (address / 16), and shared memory (< 256 KB) never carries it into the next field. In a
// loop, descriptors made once and moved by constants cost one add per wgmma instead of the ~12
// instructions of smem_desc.
// The add is done on the low 32 bits alone: a 64-bit add would carry an add-with-carry per wgmma.
__device__ __forceinline__ uint64_t desc_add(uint64_t d, uint32_t bytes) {
  return (d & 0xFFFFFFFF00000000ull) | uint32_t(uint32_t(d) + (bytes >> 4));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// All but the newest N committed groups have completed (groups complete in commit order).
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Shared memory written through the generic proxy (cp.async, st.shared) before the async proxy
// (wgmma) reads it: each writing thread fences, then the block synchronises.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// d (64 x n, fp32; scale_d = 0 overwrites) += A (64x16, K-major smem) · B (n x 16, K-major smem)ᵀ
__device__ __forceinline__ void wgmma_ss_n64(float* d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

// d (64 x 64, fp32; scale_d = 0 overwrites) += A · B with both operands MN-major in shared memory:
// A stored as its transpose (16 k-rows of 64 m-columns), B as 16 k-rows of 64 n-columns.
__device__ __forceinline__ void wgmma_ss_n64_tt(float* d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

// d (64 x 32, fp32; scale_d = 0 overwrites) += A · B, both MN-major in shared memory (as
// wgmma_ss_n64_tt, for 32 columns of B: its descriptor may start inside a 128-byte swizzle row).
__device__ __forceinline__ void wgmma_ss_n32_tt(float* d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db), "r"(scale_d));
}

// d (64 x n) += A (64x16 in registers, per warp the mma.sync A layout) · B (16 x n, MN-major smem)
__device__ __forceinline__ void wgmma_rs_n64(float* d, const uint32_t* a, uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_rs_n128(float* d, const uint32_t* a, uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

}  // namespace longctx::gpu
