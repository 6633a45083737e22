// backend.cpp — the CUDA backend (backend/cuda.h): shape checks on the typed views, then the
// kernels of cuda/ (cuda_ops.h), flash attention (flash.h) and cuBLASLt (cuda_gemm.h), all on the
// backend's stream. Compiled only with CUDA (LONGCTX_CUDA), but for the two queries at the top.
#include "longctx/backend/cuda.h"

namespace longctx {
bool cuda_supports_head_size(int64_t HS) { return HS == 64 || HS == 128; }
}  // namespace longctx

#if !defined(LONGCTX_CUDA)
namespace longctx {
int cuda_device_count() { return 0; }
int64_t cuda_free_bytes(int) { return 0; }
void cuda_set_device(int) {}
}  // namespace longctx
#else

#include <cuda_runtime.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "longctx/arena.h"
#include "longctx/backend/cuda_gemm.h"
#include "longctx/backend/cuda_ops.h"
#include "longctx/backend/shape_check.h"
#include "longctx/common.h"
#include "longctx/flash.h"

namespace longctx {

namespace {

void cuda_ok(cudaError_t e, const char* what) {
  CHECK_HINT(e == cudaSuccess, "the memory plan printed at the stage start says what the GPU holds",
             "cuda: {} failed: {}", what, cudaGetErrorString(e));
}
cudaStream_t st(void* s) { return static_cast<cudaStream_t>(s); }
const uint16_t* bits(const bf16* p) { return reinterpret_cast<const uint16_t*>(p); }
uint16_t* bits(bf16* p) { return reinterpret_cast<uint16_t*>(p); }

// The flash kernels' mask for a block at its global offsets (kSkip: every key is in the future).
gpu::FlashShape flash_of(const cpu::AttnShape& s) {
  gpu::Mask mask = gpu::Mask::kCausal;
  if (!s.causal || s.k_pos0 + s.Tk - 1 <= s.q_pos0) mask = gpu::Mask::kFull;  // every key visible
  else if (s.k_pos0 > s.q_pos0 + s.Tq - 1) mask = gpu::Mask::kSkip;
  return gpu::flash_shape(s.B, s.Tq, s.Tk, s.NH, s.NKV, s.HS, mask, s.q_pos0, s.k_pos0);
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error here, the caller decides
    return 0;
  }
  return n;
}

void cuda_set_device(int device) { cuda_ok(cudaSetDevice(device), "cudaSetDevice"); }

int64_t cuda_free_bytes(int device) {
  int old = 0;
  cuda_ok(cudaGetDevice(&old), "cudaGetDevice");
  cuda_ok(cudaSetDevice(device), "cudaSetDevice");
  size_t free = 0, total = 0;
  cuda_ok(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  cuda_ok(cudaSetDevice(old), "cudaSetDevice");
  return int64_t(free);
}

void Cuda::Free::operator()(void* p) const {
  if (p) cudaFree(p);
}

Cuda::Cuda(const CudaOptions& o) : opt_(o) {
  int n = 0;
  cuda_ok(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
  CHECK_HINT(o.device >= 0 && o.device < n, "each rank takes the GPU of its node-local rank: start at most "
             "as many ranks per node as it has GPUs, or set run.device = \"cpu\"",
             "cuda: device {} asked for, this node has {} GPU{}", o.device, n, n == 1 ? "" : "s");
  cuda_ok(cudaSetDevice(o.device), "cudaSetDevice");
  cudaStream_t s = nullptr;
  cuda_ok(cudaStreamCreate(&s), "cudaStreamCreate");  // blocking: ordered with the legacy stream's copies
  stream_ = s;
  blas_ = std::make_unique<gpu::Blas>();
}

Cuda::~Cuda() {
  scratch_.reset();
  blas_.reset();
  if (stream_) cudaStreamDestroy(st(stream_));
}

std::string Cuda::describe() const {
  cudaDeviceProp p{};
  cuda_ok(cudaGetDeviceProperties(&p, opt_.device), "cudaGetDeviceProperties");
  return fmt::format("{} (device {}, {:.1f} GiB, sm_{}{})", p.name, opt_.device,
                     double(p.totalGlobalMem) / double(1 << 30), p.major, p.minor);
}

Cuda::Memory Cuda::alloc(size_t bytes) const {
  if (bytes == 0) return Memory(nullptr);
  const size_t n = Arena::round_up(bytes);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, n);
  if (e != cudaSuccess) cudaGetLastError();  // clear the sticky-free error before reporting it
  CHECK_HINT(e == cudaSuccess, "the memory plan printed at the stage start says what needs it",
             "cuda: cannot allocate {:.1f} MiB of device memory: {}", double(n) / (1 << 20), cudaGetErrorString(e));
  cuda_ok(cudaMemsetAsync(p, 0, n, st(stream_)), "cudaMemsetAsync");
  return Memory(p);
}

size_t Cuda::op_scratch_bytes(const ScratchShape& s) {
  const size_t emb = Arena::round_up(gpu::embedding_bwd_workspace_bound(std::max<int64_t>(s.rows, 1),
                                                                        std::max<int64_t>(s.V, 1)));
  const size_t norm = Arena::round_up(gpu::rmsnorm_bwd_workspace_bytes(std::max<int64_t>(s.rows, 1),
                                                                       std::max<int64_t>(s.C, 1)));
  const size_t small = std::max(gpu::sum_squares_workspace_bytes(), gpu::xent_rows_workspace_bytes());
  return std::max({emb, norm, small});
}

void Cuda::reserve_scratch(size_t bytes) const {
  if (bytes <= scratch_bytes_) return;
  sync();  // the old space may still be in use by queued work
  scratch_.reset(), scratch_bytes_ = 0;
  scratch_ = alloc(bytes), scratch_bytes_ = Arena::round_up(bytes);
}

void* Cuda::scratch(size_t bytes) const {
  CHECK(bytes <= scratch_bytes_, "cuda: an op needs {} bytes of working space, {} are reserved "
        "(Model::configure reserves op_scratch_bytes for the stage's shapes)", bytes, scratch_bytes_);
  return scratch_.get();
}

void Cuda::sync() const { cuda_ok(cudaStreamSynchronize(st(stream_)), "cudaStreamSynchronize"); }

size_t Cuda::device_bytes_used() const {
  size_t free = 0, total = 0;
  cuda_ok(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  return total - free;
}

Tensor<const int32_t> Cuda::upload(Tensor<int32_t> device, const int32_t* host, int64_t n) const {
  CHECK(device.numel() >= n, "cuda::upload: {} tokens into a buffer of {}", n, device.numel());
  cuda_ok(cudaMemcpyAsync(device.data, host, size_t(n) * 4, cudaMemcpyHostToDevice, st(stream_)), "upload");
  sync();  // the host array may change as soon as this returns
  return Tensor<const int32_t>(device.data, {n});
}

template <class T>
void Cuda::upload(Tensor<T> dst, const T* host) const {
  cuda_ok(cudaMemcpyAsync(dst.data, host, dst.bytes(), cudaMemcpyHostToDevice, st(stream_)), "upload");
  sync();
}

template <class T>
void Cuda::download(T* host, Tensor<const T> src) const {
  cuda_ok(cudaMemcpyAsync(host, src.data, src.bytes(), cudaMemcpyDeviceToHost, st(stream_)), "download");
  sync();
}
template void Cuda::upload(Tensor<float>, const float*) const;
template void Cuda::upload(Tensor<bf16>, const bf16*) const;
template void Cuda::download(float*, Tensor<const float>) const;
template void Cuda::download(double*, Tensor<const double>) const;
template void Cuda::download(uint8_t*, Tensor<const uint8_t>) const;
template void Cuda::download(bf16*, Tensor<const bf16>) const;

void Cuda::fill(Tensor<float> x, float value) const {
  gpu::fill_f32(x.data, value, x.numel(), stream_);
}
void Cuda::fill(Tensor<bf16> x, float value) const {
  gpu::fill_bf16(bits(x.data), value, x.numel(), stream_);
}
void Cuda::fill(Tensor<double> x, float value) const {
  CHECK(value == 0.0f, "cuda::fill: doubles are only zeroed");
  cuda_ok(cudaMemsetAsync(x.data, 0, x.bytes(), st(stream_)), "cudaMemsetAsync");
}

template <class T>
void Cuda::copy(Tensor<T> dst, Tensor<const T> src) const {
  CHECK(dst.numel() == src.numel(), "cuda::copy: {} elements into {}", src.numel(), dst.numel());
  if (dst.data != src.data && !dst.empty())
    cuda_ok(cudaMemcpyAsync(dst.data, src.data, dst.bytes(), cudaMemcpyDeviceToDevice, st(stream_)), "copy");
}
template void Cuda::copy(Tensor<float>, Tensor<const float>) const;
template void Cuda::copy(Tensor<bf16>, Tensor<const bf16>) const;

void Cuda::cast(Tensor<bf16> out, Tensor<const float> in) const {
  CHECK(out.numel() == in.numel(), "cuda::cast: {} elements into {}", in.numel(), out.numel());
  gpu::cast_f32_to_bf16(bits(out.data), in.data, in.numel(), stream_);
}

void Cuda::add(Tensor<bf16> out, Tensor<const bf16> a, Tensor<const bf16> b) const {
  CHECK(out.numel() == a.numel() && a.numel() == b.numel(), "cuda::add: {} = {} + {} elements", out.numel(),
        a.numel(), b.numel());
  gpu::add_bf16(bits(out.data), bits(a.data), bits(b.data), out.numel(), stream_);
}
void Cuda::add(Tensor<float> out, Tensor<const float> a, Tensor<const float> b) const {
  CHECK(out.numel() == a.numel() && a.numel() == b.numel(), "cuda::add: {} = {} + {} elements", out.numel(),
        a.numel(), b.numel());
  gpu::add_f32(out.data, a.data, b.data, out.numel(), stream_);
}

void Cuda::sum_squares(Tensor<double> out, Tensor<const float> x, float s) const {
  CHECK(out.numel() == 1, "cuda::sum_squares: the result is one double");
  const size_t ws = gpu::sum_squares_workspace_bytes();
  gpu::sum_squares(out.data, x.data, x.numel(), s, scratch(ws), ws, stream_);
}

void Cuda::linear_fwd(Tensor<bf16> out, Tensor<const bf16> in, Tensor<const bf16> W) const {
  const int64_t N = in.size(0), I = cols_of(in), O = W.size(0);
  expect_shape(W, O, I, "cuda", "linear_fwd", "W"), expect_shape(out, N, O, "cuda", "linear_fwd", "out");
  blas_->linear_fwd(out.data, false, bits(in.data), bits(W.data), N, I, O, 0.0f, stream_);
}
void Cuda::linear_fwd(Tensor<float> out, Tensor<const bf16> in, Tensor<const bf16> W) const {
  const int64_t N = in.size(0), I = cols_of(in), O = W.size(0);
  expect_shape(W, O, I, "cuda", "linear_fwd", "W"), expect_shape(out, N, O, "cuda", "linear_fwd", "out");
  blas_->linear_fwd(out.data, true, bits(in.data), bits(W.data), N, I, O, 0.0f, stream_);
}

void Cuda::linear_bwd(Tensor<bf16> din, Tensor<float> dW, Tensor<const bf16> dout, Tensor<const bf16> in,
                      Tensor<const bf16> W, bool accumulate_din) const {
  const auto [N, I, O] = linear_bwd_dims(din, dW, dout, in, W, "cuda");
  if (!din.empty())
    blas_->linear_bwd_data(din.data, false, bits(dout.data), bits(W.data), N, I, O, accumulate_din ? 1.0f : 0.0f,
                           stream_);
  if (!dW.empty()) blas_->linear_bwd_weight(dW.data, bits(dout.data), bits(in.data), N, I, O, 1.0f, stream_);
}

void Cuda::rmsnorm_fwd(Tensor<bf16> out, Tensor<float> rstd, Tensor<const bf16> in, Tensor<const bf16> w,
                       float eps) const {
  const int64_t N = in.size(0), C = w.numel();
  expect_shape(in, N, C, "cuda", "rmsnorm_fwd", "in"), expect_shape(out, N, C, "cuda", "rmsnorm_fwd", "out");
  expect_shape(rstd, N, 1, "cuda", "rmsnorm_fwd", "rstd");
  gpu::rmsnorm_fwd(bits(out.data), rstd.data, bits(in.data), bits(w.data), N, C, eps, stream_);
}

void Cuda::rmsnorm_bwd(Tensor<bf16> din, Tensor<float> dw, Tensor<const bf16> dout, Tensor<const bf16> in,
                       Tensor<const bf16> w, Tensor<const float> rstd) const {
  const int64_t N = in.size(0), C = w.numel();
  expect_shape(dout, N, C, "cuda", "rmsnorm_bwd", "dout"), expect_shape(din, N, C, "cuda", "rmsnorm_bwd", "din");
  expect_shape(dw, C, 1, "cuda", "rmsnorm_bwd", "dw"), expect_shape(rstd, N, 1, "cuda", "rmsnorm_bwd", "rstd");
  const size_t ws = gpu::rmsnorm_bwd_workspace_bytes(N, C);
  gpu::rmsnorm_bwd(bits(din.data), nullptr, dw.data, bits(dout.data), bits(in.data), bits(w.data), rstd.data, N,
                   C, /*accumulate_din=*/true, scratch(ws), ws, stream_);
}

void Cuda::rope_table(Tensor<float> cos_t, Tensor<float> sin_t, std::span<const int64_t> pos, double theta) const {
  const int64_t T = int64_t(pos.size()), half = cos_t.ndim == 2 ? cos_t.size(1) : 0;
  CHECK(half > 0, "cuda::rope_table: the tables must be (T, HS/2)");
  expect_shape(cos_t, T, half, "cuda", "rope_table", "cos"), expect_shape(sin_t, T, half, "cuda", "rope_table", "sin");
  std::vector<float> c(size_t(T * half)), s(size_t(T * half));
  cpu::rope_table(c.data(), s.data(), pos.data(), T, 2 * half, theta);  // the CPU's tables, bit for bit
  upload(cos_t, c.data()), upload(sin_t, s.data());
}

void Cuda::rope_apply(Tensor<bf16> x, Tensor<const float> cos_t, Tensor<const float> sin_t, int sign) const {
  CHECK(x.ndim == 4, "cuda::rope_apply: x must be (B, T, H, HS)");
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), HS = x.size(3);
  expect_shape(cos_t, T, HS / 2, "cuda", "rope_apply", "cos"), expect_shape(sin_t, T, HS / 2, "cuda", "rope_apply", "sin");
  gpu::rope_apply(bits(x.data), cos_t.data, sin_t.data, B, T, H, HS, sign, stream_);
}

void Cuda::swiglu_fwd(Tensor<bf16> out, Tensor<const bf16> gate, Tensor<const bf16> up) const {
  CHECK(out.numel() == gate.numel() && gate.numel() == up.numel(), "cuda::swiglu_fwd: sizes differ");
  gpu::swiglu_fwd(bits(out.data), bits(gate.data), bits(up.data), out.numel(), stream_);
}

void Cuda::swiglu_bwd(Tensor<bf16> dgate, Tensor<bf16> dup, Tensor<const bf16> dout, Tensor<const bf16> gate,
                      Tensor<const bf16> up) const {
  const int64_t n = dout.numel();
  CHECK(dgate.numel() == n && dup.numel() == n && gate.numel() == n && up.numel() == n,
        "cuda::swiglu_bwd: sizes differ");
  gpu::swiglu_bwd(bits(dgate.data), bits(dup.data), bits(dout.data), bits(gate.data), bits(up.data), n, stream_);
}

void Cuda::embedding_fwd(Tensor<bf16> out, Tensor<const int32_t> tok, Tensor<const bf16> table, int64_t v0) const {
  const int64_t N = tok.numel(), V = table.size(0), C = table.row_size();
  expect_shape(out, N, C, "cuda", "embedding_fwd", "out");
  gpu::embedding_fwd(bits(out.data), tok.data, bits(table.data), N, C, v0, V, stream_);
}

void Cuda::embedding_bwd(Tensor<float> dtable, Tensor<const bf16> dout, Tensor<const int32_t> tok,
                         int64_t v0) const {
  const int64_t N = tok.numel(), V = dtable.size(0), C = dtable.row_size();
  expect_shape(dout, N, C, "cuda", "embedding_bwd", "dout");
  const size_t ws = gpu::embedding_bwd_workspace_bytes(N, V);
  gpu::embedding_bwd(dtable.data, bits(dout.data), tok.data, N, C, v0, V, scratch(ws), ws, stream_);
}

void Cuda::attention_fwd(Tensor<float> o, Tensor<float> lse, Tensor<const bf16> q, Tensor<const bf16> k,
                         Tensor<const bf16> v, const cpu::AttnShape& s, bool merge) const {
  check_attention<Tensor<const bf16>, Tensor<const bf16>>(s, "cuda", "attention_fwd", {q}, {k, v}, {lse},
                                                        {"q", "k", "v", "lse"});
  const int64_t rows = s.B * s.Tq;
  expect_shape(o, rows, s.NH * s.HS, "cuda", "attention_fwd", "o");  // the fp32 partial
  const gpu::FlashShape fs = flash_of(s);
  if (fs.mask == gpu::Mask::kSkip) {  // no key visible: the rows keep (o, lse), or get (0, -inf)
    if (!merge) fill(o, 0.0f), fill(lse, -std::numeric_limits<float>::infinity());
    return;
  }
  gpu::flash_fwd(fs, bits(q.data), bits(k.data), bits(v.data), nullptr, o.data, lse.data, stream_,
                 gpu::FwdKernel::kAuto, merge);  // merging in the kernel's epilogue
}

void Cuda::attention_delta(Tensor<float> delta, Tensor<const bf16> o, Tensor<const bf16> dout,
                           const cpu::AttnShape& s) const {
  check_attention<Tensor<const bf16>, Tensor<const bf16>>(s, "cuda", "attention_delta", {o, dout}, {}, {delta},
                                                  {"o", "dout", "delta"});
  gpu::flash_delta(flash_of(s), bits(o.data), bits(dout.data), delta.data, stream_);
}

void Cuda::attention_bwd(Tensor<float> dq, Tensor<float> dk, Tensor<float> dv, Tensor<const bf16> dout,
                         Tensor<const bf16> q, Tensor<const bf16> k, Tensor<const bf16> v,
                         Tensor<const float> lse, Tensor<const float> delta, const cpu::AttnShape& s,
                         bool accumulate_dkv) const {
  check_attention<Tensor<const float>, Tensor<const float>>(s, "cuda", "attention_bwd", {dq}, {dk, dv}, {lse, delta},
                                                      {"dq", "dk", "dv", "lse", "delta"});
  check_attention<Tensor<const bf16>, Tensor<const bf16>>(s, "cuda", "attention_bwd", {dout, q}, {k, v}, {},
                                                  {"dout", "q", "k", "v"});
  gpu::flash_bwd(flash_of(s), bits(q.data), bits(k.data), bits(v.data), bits(dout.data), lse.data, delta.data,
                 dq.data, dk.data, dv.data, stream_,
                 opt_.deterministic ? gpu::BwdKernel::kMmaSync : gpu::BwdKernel::kAuto, accumulate_dkv);
}

void Cuda::xent_row_max(Tensor<float> mx, Tensor<const float> z) const {
  expect_shape(mx, z.size(0), 1, "cuda", "xent_row_max", "mx");
  gpu::xent_row_max(z.data, z.size(0), z.row_size(), mx.data, stream_);
}

void Cuda::xent_row_sum(Tensor<double> sum, Tensor<double> zt, Tensor<const float> z, Tensor<const float> mx,
                        Tensor<const int32_t> target, int64_t v0) const {
  const int64_t rows = z.size(0);
  check_rows(rows, "cuda", "xent_row_sum", sum, zt, mx, target);
  gpu::xent_row_sum(z.data, rows, z.row_size(), mx.data, target.data, v0, sum.data, zt.data, stream_);
}

void Cuda::xent_rows(Tensor<float> loss, Tensor<uint8_t> top1, Tensor<const float> mx, Tensor<const double> sum,
                     Tensor<const double> zt, Tensor<const int32_t> target, Tensor<double> acc) const {
  const int64_t rows = target.numel();
  check_rows(rows, "cuda", "xent_rows", mx, sum, zt);
  CHECK((loss.empty() || loss.numel() == rows) && (top1.empty() || top1.numel() == rows),
        "cuda::xent_rows: loss or top1 has another row count than the {} targets", rows);
  CHECK(acc.numel() == 2, "cuda::xent_rows: acc holds {} values, expected 2 (loss sum, count)", acc.numel());
  const size_t ws = gpu::xent_rows_workspace_bytes();
  gpu::xent_rows(mx.data, sum.data, zt.data, target.data, rows, loss.empty() ? nullptr : loss.data,
                 top1.empty() ? nullptr : top1.data, acc.data, scratch(ws), ws, stream_);
}

void Cuda::xent_grad(Tensor<float> z, Tensor<const float> mx, Tensor<const double> sum,
                     Tensor<const int32_t> target, int64_t v0, float scale) const {
  const int64_t rows = z.size(0);
  check_rows(rows, "cuda", "xent_grad", mx, sum, target);
  gpu::xent_grad(z.data, rows, z.row_size(), mx.data, sum.data, target.data, v0, scale, stream_);
}

void Cuda::xent_grad(Tensor<bf16> dz, Tensor<const float> z, Tensor<const float> mx, Tensor<const double> sum,
                     Tensor<const int32_t> target, int64_t v0, float scale) const {
  const int64_t rows = z.size(0);
  check_rows(rows, "cuda", "xent_grad", mx, sum, target);
  expect_shape(dz, rows, z.row_size(), "cuda", "xent_grad", "dz");
  gpu::xent_grad_bf16(bits(dz.data), z.data, rows, z.row_size(), mx.data, sum.data, target.data, v0, scale, stream_);
}

void Cuda::adamw(Tensor<float> p, Tensor<const float> g, Tensor<float> m, Tensor<float> v, float lr, float beta1,
                 float beta2, float eps, float weight_decay, int64_t t, float g_mean, float g_clip,
                 Tensor<bf16> p_out) const {
  const int64_t n = p.numel();
  CHECK(g.numel() == n && m.numel() == n && v.numel() == n, "cuda::adamw: sizes differ");
  CHECK(p_out.empty() || p_out.numel() == n, "cuda::adamw: p_out has {} elements, p {}", p_out.numel(), n);
  gpu::adamw_update(p.data, p_out.empty() ? nullptr : bits(p_out.data), g.data, m.data, v.data, n, lr, beta1, beta2,
                    eps, weight_decay, t, g_mean, g_clip, stream_);
}

}  // namespace longctx
#endif  // LONGCTX_CUDA
