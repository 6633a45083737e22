// test_model_gpu.cpp — the whole model on the CUDA backend (Model<Cuda>) against the CPU fp32
// reference (Model<Cpu>) on the same weights (rounded to bf16 on the host, so both sides read the
// same values) and the same fresh random tokens: the loss, and every gradient tensor.
// Tolerances (bf16 activations): bf16 keeps 8 significant bits, a relative rounding of up to 2^-9
// (0.2%) at every op's output; a layer's forward and backward round ~30 times, mostly independent,
// so a gradient tensor differs from the fp32 one by a few tenths of a percent per layer in norm.
// The bounds below (relative L2 error per tensor 3e-2, loss 2e-3 relative) hold that with a
// margin and are far below what a wrong index, mask or missing term gives (O(1)).
// Tagged [gpu]: tests/main.cpp leaves them out where no GPU is usable.
#include "catch.h"

#if defined(LONGCTX_CUDA)
#include <cmath>
#include <cstring>

#include "gpu_util.h"
#include "longctx/backend/cpu.h"
#include "longctx/backend/cuda.h"
#include "longctx/bf16.h"
#include "longctx/flash.h"
#include "longctx/model.h"
#include "longctx/params.h"
#include "longctx/rng.h"

using namespace longctx;
using namespace longctx::test;

namespace {

struct Case {
  const char* what;
  bool tie;
  int64_t NH, NKV, HS;
  double theta;
  bool recompute, recompute_attention;
  int64_t logits_chunk;  // 0: the backend's default (one chunk here); else several chunks
};

struct Tokens {
  std::vector<int32_t> tok, tgt;
  Tokens(int64_t n, int64_t V) : tok(size_t(n)), tgt(size_t(n)) {
    RandomStream r(fresh_seed());
    for (auto& t : tok) t = int32_t(r.below(uint64_t(V)));
    for (auto& t : tgt) t = int32_t(r.below(uint64_t(V)));
    tgt[5] = -1, tgt[size_t(n / 2)] = -1;  // rows without a target
  }
};

double rel_l2(const float* a, const float* ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(ref[i]);
    num += d * d, den += double(ref[i]) * double(ref[i]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace

TEST_CASE("GPU model: the loss and every gradient tensor equal the CPU fp32 reference", "[gpu][model]") {
  REQUIRE(gpu::gpu_available());
  const Case cases[] = {
      {"GQA 4/2, HS 64, theta 5e5, untied", false, 4, 2, 64, 5e5, false, false, 0},
      {"MHA, HS 128, theta 2e6, tied, recompute (attention kept)", true, 2, 2, 128, 2e6, true, false, 0},
      {"MQA 4/1, HS 64, theta 1e4, untied, LM head in 5 chunks, recompute of all", false, 4, 1, 64, 1e4, true,
       true, 97},
  };
  const Cpu cpu;
  const Cuda cuda;
  for (const Case& c : cases) {
    INFO(c.what);
    ModelConfig m;
    m.vocab_size = 301, m.n_layers = 2, m.n_heads = c.NH, m.n_kv_heads = c.NKV, m.d_model = c.NH * c.HS;
    m.d_ff = 344, m.tie_embeddings = c.tie, m.init_std = 0.05, m.recompute = c.recompute;
    m.recompute_attention = c.recompute_attention;
    m.logits_chunk = c.logits_chunk;
    const ParamLayout layout = make_param_layout(m);
    std::vector<float> params(size_t(layout.total));
    init_params(m, layout, fresh_seed(), params.data());
    for (auto& p : params) p = round_bf16(p + 0.02f * randn(1)[0]);  // norms away from exactly 1
    std::vector<bf16> pbits(params.size());
    for (size_t i = 0; i < params.size(); ++i) pbits[i].bits = bf16_bits(params[i]);

    const int64_t B = 2, T = 200;  // T not a multiple of the kernels' 64-row tiles
    const Tokens data(B * T, m.vocab_size);
    std::vector<float> g_cpu(size_t(layout.total), 0.0f);
    Model<Cpu> ref(cpu, m, layout, params.data(), g_cpu.data());
    ref.configure(B, T, c.theta);
    const LossSum l_cpu = ref.forward_backward(data.tok.data(), data.tgt.data());

    Cuda::Memory pmem = cuda.alloc(pbits.size() * sizeof(bf16)), gmem = cuda.alloc(g_cpu.size() * 4);
    auto* pdev = static_cast<bf16*>(pmem.get());
    auto* gdev = static_cast<float*>(gmem.get());
    cuda.upload(Tensor<bf16>(pdev, {layout.total}), pbits.data());
    Model<Cuda> gpu(cuda, m, layout, pdev, gdev);
    gpu.configure(B, T, c.theta);
    const LossSum l_gpu = gpu.forward_backward(data.tok.data(), data.tgt.data());
    std::vector<float> g_gpu(g_cpu.size());
    cuda.download(g_gpu.data(), Tensor<const float>(gdev, {layout.total}));

    REQUIRE(l_gpu.count == l_cpu.count);
    REQUIRE(l_gpu.count == B * T - 2);
    const double loss_rel = std::abs(l_gpu.sum - l_cpu.sum) / std::abs(l_cpu.sum);
    INFO("loss cpu " << l_cpu.sum << " gpu " << l_gpu.sum << " rel " << loss_rel);
    CHECK(loss_rel < 2e-3);
    // The forward-only pass gives the training forward's loss to the bit (the same kernels).
    CHECK(gpu.forward(data.tok.data(), data.tgt.data()).sum == l_gpu.sum);
    double worst = 0;
    for (const auto& t : layout.tensors) {
      const double e = rel_l2(g_gpu.data() + t.offset, g_cpu.data() + t.offset, t.numel);
      INFO(t.name << ": relative L2 error " << e);
      CHECK(e < 3e-2);
      worst = std::max(worst, e);
    }
    WARN(c.what << ": loss relative error " << loss_rel << ", worst gradient tensor " << worst);
  }
}

TEST_CASE("GPU model: a second micro-batch accumulates, and repeats to the bit with deterministic kernels",
          "[gpu][model]") {
  REQUIRE(gpu::gpu_available());
  CudaOptions o;
  o.deterministic = true;
  const Cuda cuda(o);
  ModelConfig m;
  m.vocab_size = 300, m.n_layers = 2, m.n_heads = 4, m.n_kv_heads = 2, m.d_model = 256, m.d_ff = 512;
  const ParamLayout layout = make_param_layout(m);
  std::vector<float> params(size_t(layout.total));
  init_params(m, layout, fresh_seed(), params.data());
  std::vector<bf16> pbits(params.size());
  for (size_t i = 0; i < params.size(); ++i) pbits[i].bits = bf16_bits(params[i]);
  Cuda::Memory pmem = cuda.alloc(pbits.size() * 2), gmem = cuda.alloc(params.size() * 4);
  auto* pdev = static_cast<bf16*>(pmem.get());
  const Tensor<float> g(static_cast<float*>(gmem.get()), {layout.total});
  cuda.upload(Tensor<bf16>(pdev, {layout.total}), pbits.data());
  Model<Cuda> model(cuda, m, layout, pdev, g.data);
  const int64_t B = 1, T = 256;
  model.configure(B, T, 1e4);
  const Tokens data(B * T, m.vocab_size);
  auto grads = [&] {
    std::vector<float> h(size_t(layout.total));
    cuda.download(h.data(), Tensor<const float>(g));
    return h;
  };
  model.forward_backward(data.tok.data(), data.tgt.data());
  const std::vector<float> once = grads();
  model.forward_backward(data.tok.data(), data.tgt.data());
  const std::vector<float> twice = grads();
  cuda.fill(g, 0.0f);
  model.forward_backward(data.tok.data(), data.tgt.data());
  CHECK(same_bits(grads(), once));  // deterministic: the same inputs give the same bits
  // Accumulation: twice the first gradient, to fp32 rounding of the sums (2·x is exact, the
  // accumulating products round once more each).
  double num = 0, den = 0;
  for (size_t i = 0; i < once.size(); ++i) {
    const double d = double(twice[i]) - 2.0 * double(once[i]);
    num += d * d, den += 4.0 * double(once[i]) * double(once[i]);
  }
  CHECK(std::sqrt(num / den) < 1e-5);
}

#endif  // LONGCTX_CUDA
