// ops.h — the model's operations, one declaration each, CPU fp32 reference (src/backend/cpu/*.cpp).
//
// Dim letters (everywhere): B batch, T sequence (local), C d_model, NH query heads, NKV key/value
// heads, HS head size, F d_ff, V vocab; N = B·T rows. Tensors are row-major, last dim contiguous.
// Activations are (B, T, ...) so a (N, NH·HS) matrix is also (B, T, NH, HS).
// Backward functions ACCUMULATE (+=) into weight gradients (gradient accumulation over
// micro-batches) and into the input gradients marked "+=" (residual stream, ring partials).
#pragma once

#include <cstddef>
#include <cstdint>

namespace longctx::cpu {

// ---- linear (src/backend/cpu/linear.cpp): out = in @ W^T, W is [O, I] (HF convention) -------------------
void linear_fwd(float* out, const float* in, const float* W, int64_t N, int64_t I, int64_t O);
// din (+= when accumulate, else =) dout @ W ; dW += dout^T @ in.  Either output may be null.
void linear_bwd(float* din, float* dW, const float* dout, const float* in, const float* W,
                int64_t N, int64_t I, int64_t O, bool accumulate_din);

// ---- RMSNorm (src/backend/cpu/rmsnorm.cpp): out = in / sqrt(mean(in^2) + eps) * w ------------------------
// Saves rstd[N] = 1/sqrt(mean(in^2)+eps) for backward.
void rmsnorm_fwd(float* out, float* rstd, const float* in, const float* w, int64_t N, int64_t C,
                 float eps);
// din += ..., dw += ...
void rmsnorm_bwd(float* din, float* dw, const float* dout, const float* in, const float* w,
                 const float* rstd, int64_t N, int64_t C);

// ---- RoPE (src/backend/cpu/rope.cpp), "rotate half" pairing (i, i+HS/2) as in Hugging Face Llama --------
// Angle of pair i at global position p: p · theta^(-2i/HS), computed in double (fp32 p·inv_freq is
// off by ~0.06 rad near 1M positions) and stored as fp32 cos/sin tables [T, HS/2].
void rope_table(float* cos_t, float* sin_t, const int64_t* pos, int64_t T, int64_t HS, double theta);
// In place on x (B, T, H, HS): sign = +1 rotates (forward), sign = -1 rotates back (backward:
// the gradient of a rotation is the inverse rotation).
void rope_apply(float* x, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t H,
                int64_t HS, int sign);

// ---- attention (src/backend/cpu/attention.cpp): blockwise (flash) causal attention, GQA ----------------
// One call handles the local queries against one block of keys/values, which may sit anywhere in
// the global sequence: query row t has global position q_pos0 + t, key row s has k_pos0 + s.
// causal: key visible iff k_pos0 + s <= q_pos0 + t; otherwise all keys visible.
// Query head h reads key/value head h / (NH/NKV). scale = 1/sqrt(HS). Never forms a T×T buffer.
// lse and delta are (B, Tq, NH) so that a block of query rows is a contiguous slice of them too.
struct AttnShape {
  int64_t B, Tq, Tk, NH, NKV, HS;
  int64_t q_pos0 = 0, k_pos0 = 0;
  bool causal = true;
};
// o (B,Tq,NH,HS), lse (B,Tq,NH) = log sum_s exp(score): with merge = false they are written;
// with merge = true the block's result is merged into the existing (o, lse) exactly
// (lse' = log(e^lse + e^lse_blk), o rescaled by the two weights). Rows that see no key of the
// block get lse = -inf and o = 0 (or are left unchanged when merging).
void attention_fwd(float* o, float* lse, const float* q, const float* k, const float* v,
                   const AttnShape& s, bool merge);
// Bytes of per-thread working space attention_fwd/_bwd keep between calls (tiles, and the
// backward's thread-private dK/dV sums of up to Tk keys): the memory plan counts them.
size_t attention_scratch_bytes(int64_t Tk, int64_t HS);
// delta (B,Tq,NH) = rowsum(dO ∘ O): the softmax-backward term, computed once from the final O.
void attention_delta(float* delta, const float* o, const float* dout, const AttnShape& s);
// dq, dk, dv += the gradients through this block, from the FINAL lse and delta of the queries;
// with accumulate_dkv = false dk and dv are written instead (every key row: zeros where no query
// sees the key), so a ring step's block gradient needs no zeroing first.
void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* q,
                   const float* k, const float* v, const float* lse, const float* delta,
                   const AttnShape& s, bool accumulate_dkv = true);

// ---- SwiGLU (src/backend/cpu/swiglu.cpp): out = silu(gate) * up, all (N, F) --------------------------
void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n);
void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                int64_t n);

// ---- embedding (src/backend/cpu/embedding.cpp): out[n] = table[tok[n] - v0] ------------------------
// table (V, C) holds vocabulary rows [v0, v0 + V) (all of them on one rank, a tensor-parallel
// slice otherwise); rows whose token is outside the slice get zeros (another rank supplies them).
void embedding_fwd(float* out, const int32_t* tok, const float* table, int64_t N, int64_t C,
                   int64_t v0, int64_t V);
// dtable[tok[n] - v0] += dout[n] for tokens in the slice, in row order (deterministic).
void embedding_bwd(float* dtable, const float* dout, const int32_t* tok, int64_t N, int64_t C,
                   int64_t v0, int64_t V);

// ---- softmax cross-entropy pieces (src/backend/cpu/cross_entropy.cpp) ------------------------------
// z (rows, V) holds logits of the vocabulary slice [v0, v0 + V) (the whole vocabulary on one rank;
// a tensor-parallel slice otherwise, the row statistics then reduced over the slices in between).
// target (rows) in [-1, V_total); -1 = no loss at that row.
void xent_row_max(const float* z, int64_t rows, int64_t V, float* mx);  // mx = max_j z
// sum = sum_j exp(z - mx) (double); zt = z[target - v0] when the target is in the slice, else 0.
void xent_row_sum(const float* z, int64_t rows, int64_t V, const float* mx, const int32_t* target,
                  int64_t v0, double* sum, double* zt);
// From the GLOBAL statistics: loss[r] = mx + log(sum) - zt where target[r] >= 0 (else 0), and
// top1[r] = 1 where that target's logit is the row maximum (a tie counts; else 0). Either output may
// be null. Adds the losses of rows with a target to *loss_sum, in row order, and their number to
// *count (accumulating over chunks in one running sum).
void xent_rows(const float* mx, const double* sum, const double* zt, const int32_t* target,
               int64_t rows, float* loss, uint8_t* top1, double* loss_sum, int64_t* count);
// In place: z = scale·(softmax(z) - onehot(target)) with the GLOBAL mx and sum; rows without a
// target get 0.
void xent_grad(float* z, int64_t rows, int64_t V, const float* mx, const double* sum,
               const int32_t* target, int64_t v0, float scale);

// ---- elementwise (src/backend/cpu/elementwise.cpp) --------------------------------------------
void add(float* out, const float* a, const float* b, int64_t n);  // out = a + b
void scale(float* x, float s, int64_t n);                         // x *= s
// sum of (x·s)² in double, in index order; each x·s rounded to fp32 first (the bits of scale(x, s)
// then sum_squares(x), the separate passes this replaces)
double sum_squares(const float* x, int64_t n, float s = 1.0f);

// ---- AdamW (src/backend/cpu/adamw.cpp), decoupled weight decay, bias-corrected, step t >= 1 ----------
// The gradient used is g·g_mean·g_clip, multiplied in that order and rounded to fp32 at each
// product (the bits of scaling g twice beforehand; 1.0 leaves it exact). p_out (n), may be null:
// = the new p (the parameters the model reads, written with the master weights).
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float g_mean = 1.0f,
                  float g_clip = 1.0f, float* p_out = nullptr);

}  // namespace longctx::cpu
