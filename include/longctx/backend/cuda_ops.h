// backend/cuda_ops.h — the CUDA kernels of the model's small ops: casts, elementwise,
// embedding, RMSNorm, RoPE, SwiGLU, cross-entropy pieces, AdamW, sum of squares. Host-callable;
// pointers are device memory; bf16 tensors are uint16_t* (the raw bits) so that this header needs
// no CUDA headers; fp32 tensors are float*. The math, shapes and dim letters are those of ops.h
// (longctx::cpu), the reference each op is tested against (tests/test_ops_gpu.cpp, [gpu]).
// Every launcher checks its arguments first (longctx::Error, nothing launched), enqueues on
// `stream` (null: the legacy default stream) and allocates nothing: ops that need scratch take it
// as `workspace` (device memory, sized by the op's *_workspace_bytes query, 256-byte aligned).
// Precision: bf16 activations and weights, fp32 math and row statistics inside the kernels, fp32
// gradients accumulated in fp32. No kernel uses float atomics: every result has the same bits on
// every run for the same inputs and shapes (embedding_bwd, rmsnorm_bwd's dw and sum_squares
// reduce in a fixed order by construction). n, N·C, rows·V are int64; a launch refuses a row count
// (N, rows) above 2^31 - 1. Kernels run under -ftz=true: fp32 subnormals flush to zero.
//
//   cuda/cast.cu           cast_f32_to_bf16, cast_bf16_to_f32
//   cuda/elementwise.cu    fill_f32, fill_bf16, add_bf16, add_f32, scale_f32
//   cuda/sum_squares.cu    sum_squares (+ sum_squares_workspace_bytes)
//   cuda/embedding.cu      embedding_fwd, embedding_bwd (+ embedding_bwd_workspace_bytes)
//   cuda/rmsnorm.cu        rmsnorm_fwd, rmsnorm_bwd (+ rmsnorm_bwd_workspace_bytes)
//   cuda/rope.cu           rope_apply
//   cuda/swiglu.cu         swiglu_fwd, swiglu_bwd
//   cuda/cross_entropy.cu  xent_row_max, xent_row_sum, xent_grad, xent_grad_bf16
//   cuda/xent_rows.cu      xent_rows (+ xent_rows_workspace_bytes)
//   cuda/adamw.cu          adamw_update
#pragma once

#include <cstddef>
#include <cstdint>

namespace longctx::gpu {

// ---- casts (cuda/cast.cu) ---------------------------------------------------------------------
void cast_f32_to_bf16(uint16_t* out, const float* in, int64_t n, void* stream = nullptr);  // nearest even
void cast_bf16_to_f32(float* out, const uint16_t* in, int64_t n, void* stream = nullptr);  // exact

// ---- elementwise (cuda/elementwise.cu); n = 0 does nothing ---------------------------------------
void fill_f32(float* x, float value, int64_t n, void* stream = nullptr);
void fill_bf16(uint16_t* x, float value, int64_t n, void* stream = nullptr);  // value rounded to bf16
// out = bf16(float(a) + float(b)) (the residual stream); out may alias a or b.
void add_bf16(uint16_t* out, const uint16_t* a, const uint16_t* b, int64_t n, void* stream = nullptr);
void add_f32(float* out, const float* a, const float* b, int64_t n, void* stream = nullptr);  // out = a + b
void scale_f32(float* x, float s, int64_t n, void* stream = nullptr);  // x *= s (fp32)

// ---- sum of squares (cuda/sum_squares.cu) ----------------------------------------------------------
// *out (one double, device) = sum (x[i]·s)² of fp32 x (n), x·s rounded to fp32 (the bits of scaling
// x first), each square exact in double, summed in double
// in a fixed order (per-block partials of a fixed grid, then one block): deterministic, but not
// the CPU's index order (the two agree to ~n·2^-53 relative). Writes (=), never accumulates.
size_t sum_squares_workspace_bytes();
void sum_squares(double* out, const float* x, int64_t n, float s, void* workspace, size_t workspace_bytes,
                 void* stream = nullptr);

// ---- embedding (cuda/embedding.cu) ------------------------------------------------------------------
// out (N, C) bf16 = table[tok[n] - v0] for tokens in the slice [v0, v0 + V) of table (V, C) bf16;
// rows whose token is outside get zeros. tok (N) int32. Exact (a copy).
void embedding_fwd(uint16_t* out, const int32_t* tok, const uint16_t* table, int64_t N, int64_t C,
                   int64_t v0, int64_t V, void* stream = nullptr);
// dtable (V, C) fp32 += dout (N, C) bf16 rows of the tokens in the slice. Deterministic and equal to
// the bit to cpu::embedding_bwd on the same values: the (token row, n) pairs are sorted by a stable
// radix sort (cub), then each row of dtable adds its dout rows in increasing n, as the CPU does.
// workspace: 4·N int32 (keys and values, twice) plus cub's scratch for (N, V), 256-byte aligned
// pieces; embedding_bwd_workspace_bytes(N, V) says how many bytes (depends on N and V only).
size_t embedding_bwd_workspace_bytes(int64_t N, int64_t V);
// An upper bound of embedding_bwd_workspace_bytes(N, V) computed without a device (cub's size
// query needs one): what the memory plan reserves, so that a node without a GPU plans as one with
// it (longctx plan). Checked against the real query on the GPU ([gpu] test).
size_t embedding_bwd_workspace_bound(int64_t N, int64_t V);
void embedding_bwd(float* dtable, const uint16_t* dout, const int32_t* tok, int64_t N, int64_t C,
                   int64_t v0, int64_t V, void* workspace, size_t workspace_bytes,
                   void* stream = nullptr);

// ---- RMSNorm (cuda/rmsnorm.cu) -------------------------------------------------------------------------
// out (N, C) bf16 = in · rstd · w; rstd (N) fp32 = 1/sqrt(mean(in²) + eps) saved for backward
// (the row's sum of squares in fp32, in a fixed order; the last step in double, as the CPU's).
void rmsnorm_fwd(uint16_t* out, float* rstd, const uint16_t* in, const uint16_t* w, int64_t N,
                 int64_t C, float eps, void* stream = nullptr);
// g = rstd·(dout·w) − in·rstd³·mean(dout·w·in) per row, in fp32 (the row sum in fp32, fixed order).
//   din  (N, C) bf16, may be null: din = bf16(g) — or, with accumulate_din, din = bf16(din + g),
//        the sum in fp32 (the residual-stream gradient in bf16).
//   din32 (N, C) fp32, may be null: din32 += g (an fp32 residual-stream gradient: the CPU's +=).
//   dw   (C) fp32 += sum_n dout·in·rstd, deterministic: per-chunk column partials into workspace
//        (rmsnorm_bwd_workspace_bytes(N, C) = chunks·C fp32, chunks <= 256 fixed by N), then the
//        chunks added in order. dw may be null (then no workspace is needed).
void rmsnorm_bwd(uint16_t* din, float* din32, float* dw, const uint16_t* dout, const uint16_t* in,
                 const uint16_t* w, const float* rstd, int64_t N, int64_t C, bool accumulate_din,
                 void* workspace, size_t workspace_bytes, void* stream = nullptr);
size_t rmsnorm_bwd_workspace_bytes(int64_t N, int64_t C);

// ---- RoPE (cuda/rope.cu) -----------------------------------------------------------------------------
// In place on contiguous x (B, T, H, HS) bf16, "rotate half" pairs (i, i + HS/2) turned by the fp32
// tables cos_t, sin_t (T, HS/2) of cpu::rope_table: (x1, x2) -> (x1 c - x2 s', x2 c + x1 s'),
// s' = sign·s, sign = +1 (forward) or -1 (backward). fp32 math, rounded to bf16 once. HS even.
void rope_apply(uint16_t* x, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t H,
                int64_t HS, int sign, void* stream = nullptr);

// ---- SwiGLU (cuda/swiglu.cu), elementwise over n = N·F, fp32 math ------------------------------------
// out = bf16(silu(gate)·up). Saved for backward: gate, up.
void swiglu_fwd(uint16_t* out, const uint16_t* gate, const uint16_t* up, int64_t n, void* stream = nullptr);
// dgate = bf16(dout·up·σ(g)·(1 + g(1 − σ(g)))), dup = bf16(dout·silu(g)); written (=), as the CPU's.
// dgate may alias gate and dup may alias up (each element is read before it is written).
void swiglu_bwd(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate,
                const uint16_t* up, int64_t n, void* stream = nullptr);

// ---- cross-entropy pieces (cuda/cross_entropy.cu): cpu::xent_* on fp32 logits z (rows, V) -----------
// of the vocabulary slice [v0, v0 + V); target (rows) int32 in [-1, V_total), -1 = no loss.
void xent_row_max(const float* z, int64_t rows, int64_t V, float* mx, void* stream = nullptr);  // exact
// sum[r] = sum_j exp(z - mx) as double: the exponentials in fp32 (expf, <= 2 ulp), summed in double
// in a fixed order; zt[r] = z[target - v0] when the target is in the slice, else 0 (exact).
void xent_row_sum(const float* z, int64_t rows, int64_t V, const float* mx, const int32_t* target,
                  int64_t v0, double* sum, double* zt, void* stream = nullptr);
// In place: z = scale·(softmax(z) − onehot(target)) from the GLOBAL mx and sum (the CPU's
// arithmetic: exp(z − mx)·float(scale/sum), then − scale at the target); rows with target < 0 get 0.
void xent_grad(float* z, int64_t rows, int64_t V, const float* mx, const double* sum,
               const int32_t* target, int64_t v0, float scale, void* stream = nullptr);
// The same values rounded to bf16 into dz (rows, V), z unchanged: one pass instead of xent_grad
// and a cast.
void xent_grad_bf16(uint16_t* dz, const float* z, int64_t rows, int64_t V, const float* mx, const double* sum,
                    const int32_t* target, int64_t v0, float scale, void* stream = nullptr);
// Per-row loss (fp32, optional) and top-1 flags (optional) from the reduced statistics, as
// cpu::xent_rows; acc (2 doubles, device) += {loss sum, number of rows with a target}, summed in a
// fixed order (deterministic; not the CPU's row order, so equal to it within double rounding).
size_t xent_rows_workspace_bytes();
void xent_rows(const float* mx, const double* sum, const double* zt, const int32_t* target, int64_t rows,
               float* loss, uint8_t* top1, double* acc, void* workspace, size_t workspace_bytes,
               void* stream = nullptr);

// ---- AdamW (cuda/adamw.cu): cpu::adamw_update's formula, fp32, operation for operation ----------------
// (no fused multiply-adds, IEEE division and sqrt): the same bits as the CPU on the same inputs.
// p, g, m, v fp32 (n); p, m, v updated in place. p_bf16 (n), may be null: = bf16(new p), the
// weights the model reads. Step t >= 1. The gradient used is (g·g_mean)·g_clip, as the CPU's.
void adamw_update(float* p, uint16_t* p_bf16, const float* g, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t t, float g_mean = 1.0f,
                  float g_clip = 1.0f, void* stream = nullptr);

}  // namespace longctx::gpu
