// lm_head.cpp — chunked (vocabulary-parallel) LM head + cross-entropy over a backend (lm_head.h);
// instantiated for the CPU backend here.
#include "longctx/lm_head.h"

#include <type_traits>

#include "longctx/backend/counting.h"
#include "longctx/backend/cpu.h"
#include "longctx/backend/cuda.h"
#include "longctx/common.h"

namespace longctx {

template <class B>
void LmHead<B>::take_buffers(Arena& a, int64_t chunk, int64_t V_loc) {
  chunk_ = chunk;
  logits_ = a.take<float>({chunk, V_loc});
  mx_ = a.take<float>({chunk});
  stats_ = a.take<double>({2 * chunk});
  acc_ = a.take<double>({2});
  dz_ = a.take<Act>({std::is_same_v<Act, float> ? 0 : chunk, V_loc});
  const int64_t dev_rows = B::kHostMemory ? 0 : chunk;
  row_loss_ = a.take<float>({dev_rows}), row_top1_ = a.take<uint8_t>({dev_rows});
}

template <class B>
LossSum LmHead<B>::loss(Tensor<const Act> x, Tensor<const Param> W, Tensor<const int32_t> target, int64_t v0,
                        Tensor<Act> dx, Tensor<float> dW, float scale, const RowStats& out) {
  CHECK(chunk_ > 0, "LmHead: take_buffers() before loss()");
  const int64_t N = x.size(0);
  be_.fill(acc_, 0.0f);
  for (int64_t n0 = 0; n0 < N; n0 += chunk_) {
    const int64_t rows = std::min(chunk_, N - n0);
    const Tensor<const int32_t> tg = target.rows(n0, rows);
    const Tensor<float> z = logits_.rows(0, rows), mx = mx_.rows(0, rows);
    const Tensor<double> sum = stats_.rows(0, rows), zt = stats_.rows(rows, rows);
    be_.linear_fwd(z, x.rows(n0, rows), W);
    be_.xent_row_max(mx, z);
    if (tp_) tp_->all_reduce_max(mx.data, rows, be_.compute());
    be_.xent_row_sum(sum, zt, z, mx, tg, v0);
    if (tp_) tp_->all_reduce_sum(stats_.data, 2 * rows, be_.compute());  // sum and zt are adjacent
    // Row statistics: written straight into the caller's host arrays, or on the device and copied.
    Tensor<float> loss(out.loss ? out.loss + n0 : nullptr, {out.loss ? rows : 0});
    Tensor<uint8_t> top1(out.top1 ? out.top1 + n0 : nullptr, {out.top1 ? rows : 0});
    if constexpr (!B::kHostMemory) {
      if (out.loss) loss = row_loss_.rows(0, rows);
      if (out.top1) top1 = row_top1_.rows(0, rows);
    }
    be_.xent_rows(loss, top1, mx, sum, zt, tg, acc_);
    if constexpr (!B::kHostMemory) {
      if (out.loss) be_.download(out.loss + n0, Tensor<const float>(loss));
      if (out.top1) be_.download(out.top1 + n0, Tensor<const uint8_t>(top1));
    }
    if (dx.empty() && dW.empty()) continue;
    if constexpr (std::is_same_v<Act, float>) {
      be_.xent_grad(z, mx, sum, tg, v0, scale);  // in place
      if (!dx.empty()) be_.linear_bwd(dx.rows(n0, rows), {}, z, {}, W, false);
      if (!dW.empty()) be_.linear_bwd({}, dW, z, x.rows(n0, rows), {}, false);
    } else {  // the products take bf16 operands: the gradient of the logits is written as bf16
      const Tensor<Act> dz = dz_.rows(0, rows);
      be_.xent_grad(dz, Tensor<const float>(z), mx, sum, tg, v0, scale);
      if (!dx.empty()) be_.linear_bwd(dx.rows(n0, rows), {}, dz, {}, W, false);
      if (!dW.empty()) be_.linear_bwd({}, dW, dz, x.rows(n0, rows), {}, false);
    }
  }
  double acc[2];
  be_.download(acc, Tensor<const double>(acc_));
  return LossSum{acc[0], int64_t(acc[1])};
}

template class LmHead<Cpu>;
#if defined(LONGCTX_CUDA)
template class LmHead<Cuda>;
#endif
// The memory plan's probes (backend/counting.h): the buffers only.
template void LmHead<Counting<Cpu>>::take_buffers(Arena&, int64_t, int64_t);
#if defined(LONGCTX_CUDA)
template void LmHead<Counting<Cuda>>::take_buffers(Arena&, int64_t, int64_t);
#endif

double lm_head_loss(const float* x, const float* W, const int32_t* target, int64_t N, int64_t C,
                    int64_t V_loc, int64_t v0, float* dx, float* dW, float scale, int64_t chunk,
                    int64_t* count, const Comm* tp, const RowStats& rows) {
  CHECK(chunk > 0, "lm_head_loss: chunk must be positive");
  const Cpu be;
  LmHead<Cpu> head(be, tp);
  Arena plan;
  head.take_buffers(plan, chunk, V_loc);
  const Cpu::Memory mem = be.alloc(plan.bytes());
  Arena arena(mem.get(), plan.bytes());
  head.take_buffers(arena, chunk, V_loc);
  const LossSum r = head.loss(Tensor<const float>(x, {N, C}), Tensor<const float>(W, {V_loc, C}),
                              Tensor<const int32_t>(target, {N}), v0,
                              Tensor<float>(dx, {dx ? N : 0, C}), Tensor<float>(dW, {dW ? V_loc : 0, C}),
                              scale, rows);
  if (count) *count = r.count;
  return r.sum;
}

}  // namespace longctx
