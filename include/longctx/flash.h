// flash.h — flash attention on the GPU (cuda/flash_fwd.cu, cuda/flash_bwd.cu), with the ring-step
// interface. Host-callable; pointers are device memory; bf16 tensors are passed as uint16_t (the
// raw bits) so that this header needs no CUDA headers.
//
//   O = softmax(Q·Kᵀ·scale + mask)·V per head, scale = 1/sqrt(HS), online softmax over key tiles,
//   fp32 accumulation, LSE (log-sum-exp of the scaled scores, natural log) per query row.
// Q, O: (B, Tq, NH, HS); K, V: (B, Tk, NKV, HS), with explicit element strides for batch, token and
// head (the last dimension contiguous), so the model's activations need no transposes. Query head
// h reads key/value head h / (NH/NKV) (grouped-query attention without copies).
// Ring step: the keys may sit anywhere in the global sequence: query row i is at global position
// q_pos0 + i, key row j at k_pos0 + j. Mask kCausal hides key j from query i when
// k_pos0 + j > q_pos0 + i; kFull hides nothing; kSkip (a block wholly in the future) does nothing.
// Limits (checked by flash_check.h before any launch): HS ∈ {64, 128}; strides multiples of 8
// elements; bf16 tensors 16-byte aligned, fp32 outputs dq/dk/dv/o32 8-byte aligned.
#pragma once

#include <cstdint>

namespace longctx::gpu {

enum class Mask { kFull, kCausal, kSkip };

struct FlashShape {
  int64_t B = 1, Tq = 0, Tk = 0, NH = 1, NKV = 1, HS = 128;
  int64_t q_sb = 0, q_st = 0, q_sh = 0;  // element strides of Q and O (and dO, dQ)
  int64_t k_sb = 0, k_st = 0, k_sh = 0;  // element strides of K and V (and dK, dV)
  int64_t q_pos0 = 0, k_pos0 = 0;
  Mask mask = Mask::kCausal;
};
// Strides for contiguous (B, T, H, HS) tensors.
FlashShape flash_shape(int64_t B, int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HS,
                       Mask mask, int64_t q_pos0 = 0, int64_t k_pos0 = 0);

// The kernel is chosen per call, by the last argument of flash_fwd / flash_bwd (there is no
// process-wide setting). Forward: kAuto = wgmma on sm_90 (Hopper) devices, mma.sync elsewhere;
// the others force one (tests run both; kWgmma throws Error off Hopper).
enum class FwdKernel { kAuto, kMmaSync, kWgmma };
bool wgmma_available();  // the current device is sm_90 and the wgmma kernel was built

// Forward. Writes lse (B, Tq, NH) fp32 and O: as bf16 into o (if non-null) and/or as the fp32
// partial into o32 (if non-null; contiguous (B, Tq, NH, HS)) for merging ring steps. Rows that see
// no key get lse = -inf and O = 0. `kernel`: which forward kernel runs (see FwdKernel).
// merge: (o32, lse) already hold a running partial and the block's result is merged into them in
// the kernel's epilogue, by flash_merge's formula (o must be null; rows that see no key of the
// block keep their values). A ring step then needs no fp32 block partial and no merge pass.
void flash_fwd(const FlashShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
               uint16_t* o, float* o32, float* lse, void* stream = nullptr,
               FwdKernel kernel = FwdKernel::kAuto, bool merge = false);

// Exact merge of a block's partial into the running one, both fp32 (rows, HS) with lse (rows):
// lse' = log(e^lse + e^lse_blk), o' = o·e^(lse - lse') + o_blk·e^(lse_blk - lse'). The ring now
// merges inside flash_fwd (merge); this pass is what the tests hold that epilogue to, bit for bit.
void flash_merge(float* o, float* lse, const float* o_blk, const float* lse_blk, int64_t rows,
                 int64_t HS, void* stream = nullptr);
// fp32 -> bf16 (rows·HS elements, contiguous).
void to_bf16(uint16_t* out, const float* in, int64_t n, void* stream = nullptr);

// Backward of one block, from the FINAL lse of the queries and delta = rowsum(dO ∘ O) (B, Tq, NH),
// computed once per attention by flash_delta. dq (B,Tq,NH,HS), dk/dv (B,Tk,NKV,HS): fp32,
// contiguous. dq is ACCUMULATED (+=), so ring steps add up; dk/dv are accumulated too, or, with
// dkv_accumulate = false, WRITTEN (every row of the block, zero where no query sees the key), so a
// ring step's dK/dV need no zeroing first.
// Two kernels: kWgmma (sm_90a, 5 matmuls) adds dQ with fp32 atomics, so dQ's last bits vary from
// run to run; kMmaSync is deterministic (no atomics: dK/dV and dQ come from two kernels that each
// own their outputs, at the price of computing S and dP twice). kAuto = kWgmma on Hopper; choose
// kMmaSync where runs must be bit-reproducible (pass it as flash_bwd's `kernel`; kWgmma throws
// Error off Hopper).
enum class BwdKernel { kAuto, kMmaSync, kWgmma };
void flash_delta(const FlashShape& s, const uint16_t* o, const uint16_t* dout, float* delta,
                 void* stream = nullptr);
void flash_bwd(const FlashShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
               const uint16_t* dout, const float* lse, const float* delta, float* dq, float* dk,
               float* dv, void* stream = nullptr, BwdKernel kernel = BwdKernel::kAuto,
               bool dkv_accumulate = true);

// Whether a CUDA device is usable here (tests skip without one).
bool gpu_available();
// x[i] = scale · N(0,1) as bf16, drawn from (seed, i) on the device (benchmarks: never zeros).
void fill_normal_bf16(uint16_t* x, int64_t n, uint64_t seed, float scale = 1.0f, void* stream = nullptr);

}  // namespace longctx::gpu
