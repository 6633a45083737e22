// backend/cpu.h — the CPU backend: host memory, fp32 everywhere, the frozen reference ops of
// ops.h behind the typed interface that Model<B>, RingAttention<B>, LmHead<B> and StepEngine<B>
// are written against (docs/ARCHITECTURE.md, "The backend seam").
//
// A backend B provides
//   types   B::Act (activations and their gradients), B::Param (the weights the model reads),
//           fp32 gradients, master weights and moments on every backend;
//   memory  alloc(bytes) -> B::Memory (zeroed, 256-byte aligned, owned), upload of host tokens;
//   streams compute() and comm(): the stream each kind of work is ordered on (null here);
//   ops     the same names and shapes as ops.h on Tensor views; shapes are checked here, once.
// The CUDA backend (backend/cuda.h) gives Act = Param = bf16 and the kernels of cuda/.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "longctx/comm.h"
#include "longctx/ops.h"
#include "longctx/tensor.h"

namespace longctx {

// The shapes a stage's ops run at, for the working space they keep outside the arenas
// (B::op_scratch_bytes): the longest attention block (keys = query rows of one call), the
// local heads, and the rows and widths of the row-wise ops.
struct ScratchShape {
  int64_t keys = 0, NH = 0, HS = 0;  // attention: the longest query or key range of one call
  int64_t rows = 0, C = 0, V = 0;    // RMSNorm / embedding rows, width, this rank's vocabulary
};

struct Cpu {
  using Act = float;
  using Param = float;
  static constexpr const char* kName = "cpu";
  static constexpr bool kHostMemory = true;  // views of host arrays need no upload
  // The LM head's logits chunk: rows per chunk = kLogitsBytes / (4 · V_loc) (fp32 logits).
  static constexpr size_t kLogitsBytes = size_t(16) << 20;

  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  using Memory = std::unique_ptr<void, Free>;
  // `bytes` zeroed bytes on a 256-byte boundary (null for 0 bytes).
  Memory alloc(size_t bytes) const;

  // Working space the ops keep outside any arena (the CPU attention's per-thread sums), counted by
  // the memory plan; reserve_scratch takes it before a stage's first step (here the ops keep
  // their own thread_local buffers: nothing to take).
  static size_t op_scratch_bytes(const ScratchShape& s) { return cpu::attention_scratch_bytes(s.keys, s.HS); }
  void reserve_scratch(size_t /*bytes*/) const {}

  Stream compute() const { return {}; }
  Stream comm() const { return {}; }
  void sync() const {}  // host work is done when the call returns

  // Host tokens (n) as a tensor the ops can read: on the host, the host array itself.
  Tensor<const int32_t> upload(Tensor<int32_t> /*device*/, const int32_t* host, int64_t n) const {
    return Tensor<const int32_t>(host, {n});
  }
  // A backend tensor into host memory (n = src.numel() elements): here a copy.
  template <class T>
  void download(T* host, Tensor<const T> src) const;

  // ---- elementwise ----
  template <class T>
  void fill(Tensor<T> x, float value) const;  // every element = T(value)
  template <class T>
  void copy(Tensor<T> dst, Tensor<const T> src) const;
  void add(Tensor<float> out, Tensor<const float> a, Tensor<const float> b) const;  // out = a + b
  // out (1) = sum of (x·s)² in double, fixed order (out is backend memory: the caller downloads it).
  void sum_squares(Tensor<double> out, Tensor<const float> x, float s = 1.0f) const;

  // ---- the model's ops (ops.h gives the math) ----
  // out (N, O) = in (N, I) · W (O, I)ᵀ
  void linear_fwd(Tensor<float> out, Tensor<const float> in, Tensor<const float> W) const;
  // din (N, I) = (or +=) dout · W; dW (O, I) += doutᵀ · in. Either output may be empty.
  void linear_bwd(Tensor<float> din, Tensor<float> dW, Tensor<const float> dout, Tensor<const float> in,
                  Tensor<const float> W, bool accumulate_din) const;
  void rmsnorm_fwd(Tensor<float> out, Tensor<float> rstd, Tensor<const float> in, Tensor<const float> w,
                   float eps) const;
  void rmsnorm_bwd(Tensor<float> din, Tensor<float> dw, Tensor<const float> dout, Tensor<const float> in,
                   Tensor<const float> w, Tensor<const float> rstd) const;
  // cos/sin (T, HS/2) at the global positions pos (T), angles in double.
  void rope_table(Tensor<float> cos_t, Tensor<float> sin_t, std::span<const int64_t> pos, double theta) const;
  // x (B, T, H, HS) in place; sign +1 forward, -1 backward.
  void rope_apply(Tensor<float> x, Tensor<const float> cos_t, Tensor<const float> sin_t, int sign) const;
  void swiglu_fwd(Tensor<float> out, Tensor<const float> gate, Tensor<const float> up) const;
  void swiglu_bwd(Tensor<float> dgate, Tensor<float> dup, Tensor<const float> dout, Tensor<const float> gate,
                  Tensor<const float> up) const;
  // out (N, C) = table (V, C) rows [v0, v0 + V) at tok (N); zeros outside the slice.
  void embedding_fwd(Tensor<float> out, Tensor<const int32_t> tok, Tensor<const float> table, int64_t v0) const;
  void embedding_bwd(Tensor<float> dtable, Tensor<const float> dout, Tensor<const int32_t> tok, int64_t v0) const;

  // Attention of query rows against one key/value block (ops.h: AttnShape). o (B·Tq, NH·HS) and
  // lse (B·Tq, NH) are the fp32 partials, merged into when `merge`.
  void attention_fwd(Tensor<float> o, Tensor<float> lse, Tensor<const float> q, Tensor<const float> k,
                     Tensor<const float> v, const cpu::AttnShape& s, bool merge) const;
  void attention_delta(Tensor<float> delta, Tensor<const float> o, Tensor<const float> dout,
                       const cpu::AttnShape& s) const;
  // dq (fp32) += the block's gradient; dk, dv += theirs, or = when !accumulate_dkv (every row).
  void attention_bwd(Tensor<float> dq, Tensor<float> dk, Tensor<float> dv, Tensor<const float> dout,
                     Tensor<const float> q, Tensor<const float> k, Tensor<const float> v,
                     Tensor<const float> lse, Tensor<const float> delta, const cpu::AttnShape& s,
                     bool accumulate_dkv = true) const;

  // Softmax cross-entropy over a chunk of fp32 logits z (rows, V) of vocabulary [v0, v0 + V).
  void xent_row_max(Tensor<float> mx, Tensor<const float> z) const;
  void xent_row_sum(Tensor<double> sum, Tensor<double> zt, Tensor<const float> z, Tensor<const float> mx,
                    Tensor<const int32_t> target, int64_t v0) const;
  // Per-row loss (rows) and top-1 flags from the reduced statistics (either may be empty); acc (2)
  // += {the losses of rows with a target, added in row order; their number}.
  void xent_rows(Tensor<float> loss, Tensor<uint8_t> top1, Tensor<const float> mx, Tensor<const double> sum,
                 Tensor<const double> zt, Tensor<const int32_t> target, Tensor<double> acc) const;
  void xent_grad(Tensor<float> z, Tensor<const float> mx, Tensor<const double> sum,
                 Tensor<const int32_t> target, int64_t v0, float scale) const;

  // AdamW on a span of the fp32 master weights with its gradient and moments (ops.h): the
  // gradient used is (g·g_mean)·g_clip; p_out (empty, or p's size) gets the new weights as Param.
  void adamw(Tensor<float> p, Tensor<const float> g, Tensor<float> m, Tensor<float> v, float lr, float beta1,
             float beta2, float eps, float weight_decay, int64_t t, float g_mean = 1.0f, float g_clip = 1.0f,
             Tensor<Param> p_out = {}) const;
};

}  // namespace longctx
