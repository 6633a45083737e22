// backend.cpp — the CPU backend (backend/cpu.h): shape checks on the typed views, then the
// frozen fp32 reference ops of ops.h. Nothing here computes anything the reference does not.
#include "longctx/backend/cpu.h"

#include <algorithm>
#include <cstring>

#include "longctx/arena.h"
#include "longctx/backend/shape_check.h"
#include "longctx/common.h"

namespace longctx {

Cpu::Memory Cpu::alloc(size_t bytes) const {
  if (bytes == 0) return Memory(nullptr);
  const size_t n = Arena::round_up(bytes);
  void* p = std::aligned_alloc(Arena::kAlign, n);
  CHECK_HINT(p, "the memory plan printed at the stage start says what needs it",
             "cpu: cannot allocate {:.1f} MiB", double(n) / (1 << 20));
  std::memset(p, 0, n);
  return Memory(p);
}

template <class T>
void Cpu::fill(Tensor<T> x, float value) const {
  std::fill_n(x.data, x.numel(), T(value));
}
template <class T>
void Cpu::copy(Tensor<T> dst, Tensor<const T> src) const {
  CHECK(dst.numel() == src.numel(), "cpu::copy: {} elements into {}", src.numel(), dst.numel());
  if (dst.data != src.data) std::copy_n(src.data, src.numel(), dst.data);
}
template <class T>
void Cpu::download(T* host, Tensor<const T> src) const {
  if (host != src.data) std::copy_n(src.data, src.numel(), host);
}
template void Cpu::fill(Tensor<float>, float) const;
template void Cpu::fill(Tensor<double>, float) const;
template void Cpu::copy(Tensor<float>, Tensor<const float>) const;
template void Cpu::download(double*, Tensor<const double>) const;
template void Cpu::download(float*, Tensor<const float>) const;
template void Cpu::download(uint8_t*, Tensor<const uint8_t>) const;

void Cpu::add(Tensor<float> out, Tensor<const float> a, Tensor<const float> b) const {
  CHECK(out.numel() == a.numel() && a.numel() == b.numel(), "cpu::add: {} = {} + {} elements",
        out.numel(), a.numel(), b.numel());
  cpu::add(out.data, a.data, b.data, out.numel());
}
void Cpu::sum_squares(Tensor<double> out, Tensor<const float> x, float s) const {
  CHECK(out.numel() == 1, "cpu::sum_squares: the result is one double");
  out.data[0] = cpu::sum_squares(x.data, x.numel(), s);
}

void Cpu::linear_fwd(Tensor<float> out, Tensor<const float> in, Tensor<const float> W) const {
  const int64_t N = in.size(0), I = cols_of(in), O = W.size(0);
  expect_shape(W, O, I, "cpu", "linear_fwd", "W");
  expect_shape(out, N, O, "cpu", "linear_fwd", "out");
  cpu::linear_fwd(out.data, in.data, W.data, N, I, O);
}

void Cpu::linear_bwd(Tensor<float> din, Tensor<float> dW, Tensor<const float> dout, Tensor<const float> in,
                     Tensor<const float> W, bool accumulate_din) const {
  const auto [N, I, O] = linear_bwd_dims(din, dW, dout, in, W, "cpu");
  cpu::linear_bwd(din.empty() ? nullptr : din.data, dW.empty() ? nullptr : dW.data, dout.data,
                  in.data, W.data, N, I, O, accumulate_din);
}

void Cpu::rmsnorm_fwd(Tensor<float> out, Tensor<float> rstd, Tensor<const float> in, Tensor<const float> w,
                      float eps) const {
  const int64_t N = in.size(0), C = w.numel();
  expect_shape(in, N, C, "cpu", "rmsnorm_fwd", "in"), expect_shape(out, N, C, "cpu", "rmsnorm_fwd", "out");
  expect_shape(rstd, N, 1, "cpu", "rmsnorm_fwd", "rstd");
  cpu::rmsnorm_fwd(out.data, rstd.data, in.data, w.data, N, C, eps);
}

void Cpu::rmsnorm_bwd(Tensor<float> din, Tensor<float> dw, Tensor<const float> dout, Tensor<const float> in,
                      Tensor<const float> w, Tensor<const float> rstd) const {
  const int64_t N = in.size(0), C = w.numel();
  expect_shape(dout, N, C, "cpu", "rmsnorm_bwd", "dout"), expect_shape(din, N, C, "cpu", "rmsnorm_bwd", "din");
  expect_shape(dw, C, 1, "cpu", "rmsnorm_bwd", "dw"), expect_shape(rstd, N, 1, "cpu", "rmsnorm_bwd", "rstd");
  cpu::rmsnorm_bwd(din.data, dw.data, dout.data, in.data, w.data, rstd.data, N, C);
}

void Cpu::rope_table(Tensor<float> cos_t, Tensor<float> sin_t, std::span<const int64_t> pos,
                     double theta) const {
  const int64_t T = int64_t(pos.size()), half = cos_t.ndim == 2 ? cos_t.size(1) : 0;
  CHECK(half > 0, "cpu::rope_table: the tables must be (T, HS/2)");
  expect_shape(cos_t, T, half, "cpu", "rope_table", "cos"), expect_shape(sin_t, T, half, "cpu", "rope_table", "sin");
  cpu::rope_table(cos_t.data, sin_t.data, pos.data(), T, 2 * half, theta);
}

void Cpu::rope_apply(Tensor<float> x, Tensor<const float> cos_t, Tensor<const float> sin_t, int sign) const {
  CHECK(x.ndim == 4, "cpu::rope_apply: x must be (B, T, H, HS)");
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), HS = x.size(3);
  CHECK(HS % 2 == 0, "cpu::rope_apply: head size {} is odd (rotate-half pairs i, i + HS/2)", HS);
  expect_shape(cos_t, T, HS / 2, "cpu", "rope_apply", "cos"), expect_shape(sin_t, T, HS / 2, "cpu", "rope_apply", "sin");
  cpu::rope_apply(x.data, cos_t.data, sin_t.data, B, T, H, HS, sign);
}

void Cpu::swiglu_fwd(Tensor<float> out, Tensor<const float> gate, Tensor<const float> up) const {
  CHECK(out.numel() == gate.numel() && gate.numel() == up.numel(), "cpu::swiglu_fwd: sizes differ");
  cpu::swiglu_fwd(out.data, gate.data, up.data, out.numel());
}

void Cpu::swiglu_bwd(Tensor<float> dgate, Tensor<float> dup, Tensor<const float> dout, Tensor<const float> gate,
                     Tensor<const float> up) const {
  const int64_t n = dout.numel();
  CHECK(dgate.numel() == n && dup.numel() == n && gate.numel() == n && up.numel() == n,
        "cpu::swiglu_bwd: sizes differ");
  cpu::swiglu_bwd(dgate.data, dup.data, dout.data, gate.data, up.data, n);
}

void Cpu::embedding_fwd(Tensor<float> out, Tensor<const int32_t> tok, Tensor<const float> table,
                        int64_t v0) const {
  const int64_t N = tok.numel(), V = table.size(0), C = table.row_size();
  expect_shape(out, N, C, "cpu", "embedding_fwd", "out");
  cpu::embedding_fwd(out.data, tok.data, table.data, N, C, v0, V);
}

void Cpu::embedding_bwd(Tensor<float> dtable, Tensor<const float> dout, Tensor<const int32_t> tok,
                        int64_t v0) const {
  const int64_t N = tok.numel(), V = dtable.size(0), C = dtable.row_size();
  expect_shape(dout, N, C, "cpu", "embedding_bwd", "dout");
  cpu::embedding_bwd(dtable.data, dout.data, tok.data, N, C, v0, V);
}

void Cpu::attention_fwd(Tensor<float> o, Tensor<float> lse, Tensor<const float> q, Tensor<const float> k,
                        Tensor<const float> v, const cpu::AttnShape& s, bool merge) const {
  check_attention<Tensor<const float>, Tensor<const float>>(s, "cpu", "attention_fwd", {q, o}, {k, v}, {lse},
                                                  {"q", "o", "k", "v", "lse"});
  cpu::attention_fwd(o.data, lse.data, q.data, k.data, v.data, s, merge);
}

void Cpu::attention_delta(Tensor<float> delta, Tensor<const float> o, Tensor<const float> dout,
                          const cpu::AttnShape& s) const {
  check_attention<Tensor<const float>, Tensor<const float>>(s, "cpu", "attention_delta", {o, dout}, {}, {delta},
                                                  {"o", "dout", "delta"});
  cpu::attention_delta(delta.data, o.data, dout.data, s);
}

void Cpu::attention_bwd(Tensor<float> dq, Tensor<float> dk, Tensor<float> dv, Tensor<const float> dout,
                        Tensor<const float> q, Tensor<const float> k, Tensor<const float> v,
                        Tensor<const float> lse, Tensor<const float> delta, const cpu::AttnShape& s,
                        bool accumulate_dkv) const {
  check_attention<Tensor<const float>, Tensor<const float>>(s, "cpu", "attention_bwd", {dq}, {dk, dv}, {lse, delta},
                                                      {"dq", "dk", "dv", "lse", "delta"});
  check_attention<Tensor<const float>, Tensor<const float>>(s, "cpu", "attention_bwd", {dout, q}, {k, v}, {},
                                                  {"dout", "q", "k", "v"});
  cpu::attention_bwd(dq.data, dk.data, dv.data, dout.data, q.data, k.data, v.data, lse.data, delta.data, s,
                     accumulate_dkv);
}

void Cpu::xent_row_max(Tensor<float> mx, Tensor<const float> z) const {
  expect_shape(mx, z.size(0), 1, "cpu", "xent_row_max", "mx");
  cpu::xent_row_max(z.data, z.size(0), z.row_size(), mx.data);
}

void Cpu::xent_row_sum(Tensor<double> sum, Tensor<double> zt, Tensor<const float> z, Tensor<const float> mx,
                       Tensor<const int32_t> target, int64_t v0) const {
  const int64_t rows = z.size(0);
  check_rows(rows, "cpu", "xent_row_sum", sum, zt, mx, target);
  cpu::xent_row_sum(z.data, rows, z.row_size(), mx.data, target.data, v0, sum.data, zt.data);
}

void Cpu::xent_rows(Tensor<float> loss, Tensor<uint8_t> top1, Tensor<const float> mx, Tensor<const double> sum,
                    Tensor<const double> zt, Tensor<const int32_t> target, Tensor<double> acc) const {
  const int64_t rows = target.numel();
  check_rows(rows, "cpu", "xent_rows", mx, sum, zt);
  CHECK((loss.empty() || loss.numel() == rows) && (top1.empty() || top1.numel() == rows),
        "cpu::xent_rows: loss or top1 has another row count than the {} targets", rows);
  CHECK(acc.numel() == 2, "cpu::xent_rows: acc holds {} values, expected 2 (loss sum, count)", acc.numel());
  int64_t count = 0;
  cpu::xent_rows(mx.data, sum.data, zt.data, target.data, rows, loss.empty() ? nullptr : loss.data,
                 top1.empty() ? nullptr : top1.data, &acc.data[0], &count);
  acc.data[1] += double(count);
}

void Cpu::xent_grad(Tensor<float> z, Tensor<const float> mx, Tensor<const double> sum,
                    Tensor<const int32_t> target, int64_t v0, float scale) const {
  const int64_t rows = z.size(0);
  check_rows(rows, "cpu", "xent_grad", mx, sum, target);
  cpu::xent_grad(z.data, rows, z.row_size(), mx.data, sum.data, target.data, v0, scale);
}

void Cpu::adamw(Tensor<float> p, Tensor<const float> g, Tensor<float> m, Tensor<float> v, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t t, float g_mean, float g_clip,
                Tensor<float> p_out) const {
  const int64_t n = p.numel();
  CHECK(g.numel() == n && m.numel() == n && v.numel() == n, "cpu::adamw: sizes differ");
  CHECK(p_out.empty() || p_out.numel() == n, "cpu::adamw: p_out has {} elements, p {}", p_out.numel(), n);
  cpu::adamw_update(p.data, g.data, m.data, v.data, n, lr, beta1, beta2, eps, weight_decay, t, g_mean, g_clip,
                    p_out.empty() ? nullptr : p_out.data);
}

}  // namespace longctx
