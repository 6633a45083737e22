// test_model.cpp — the whole tiny model: gradient against finite differences, recompute equals
// stored activations bit for bit, forward-only equals the training forward.
#include <cstring>

#include "catch.h"
#include "grad_check.h"
#include "longctx/backend/cpu.h"
#include "longctx/model.h"
#include "longctx/params.h"
#include "longctx/rng.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;

namespace {

const Cpu cpu_backend;  // the model is driven through the backend seam (backend/cpu.h)

ModelConfig tiny_model(bool tie, int64_t nkv) {
  ModelConfig m;
  m.vocab_size = 61, m.d_model = 32, m.n_layers = 2, m.n_heads = 4, m.n_kv_heads = nkv;
  m.d_ff = 40, m.tie_embeddings = tie, m.init_std = 0.1;  // larger than 0.02: gradients well above fp32 noise, softmax not saturated
  return m;
}

struct Batch {
  std::vector<int32_t> tok, tgt;
  Batch(int64_t B, int64_t T, int64_t V) : tok(B * T), tgt(B * T) {
    RandomStream r(fresh_seed());
    for (auto& t : tok) t = int32_t(r.below(uint64_t(V)));
    for (auto& t : tgt) t = int32_t(r.below(uint64_t(V)));
    tgt[3] = -1;  // one position without a target
  }
};

}  // namespace

TEST_CASE("whole-model gradient matches finite differences", "[grad]") {
  for (auto [tie, nkv] : {std::pair{false, int64_t(2)}, std::pair{true, int64_t(4)}, std::pair{false, int64_t(1)}}) {
    const ModelConfig m = tiny_model(tie, nkv);
    const ParamLayout layout = make_param_layout(m);
    std::vector<float> params(layout.total), grads(layout.total, 0.0f);
    init_params(m, layout, fresh_seed(), params.data());
    for (auto& p : params) p += 0.05f * float(randn(1)[0]);  // norms away from exactly 1
    Model<Cpu> model(cpu_backend, m, layout, params.data(), grads.data());
    const int64_t B = 2, T = 70;  // T > one 64-row attention tile
    model.configure(B, T, 500.0);
    Batch batch(B, T, m.vocab_size);
    const LossSum ls = model.forward_backward(batch.tok.data(), batch.tgt.data());
    REQUIRE(ls.count == B * T - 1);
    auto loss = [&] { return model.forward(batch.tok.data(), batch.tgt.data()).sum; };
    REQUIRE(loss() == ls.sum);  // forward-only computes the identical loss
    INFO("tie_embeddings=" << tie << " n_kv_heads=" << nkv);
    // The directional derivative along a unit-normal d has typical size |g|; central differences
    // with eps = 1e-3 err by O(eps²) (sharp softmax) plus fp32 rounding of a ~300-nat loss sum
    // (~3e-5/eps): 1e-2·max(|<g,d>|, |g|) bounds both with margin (measured ~1e-3 at this init).
    auto within = [](const DirCheck& d, double gnorm) {
      return std::abs(d.fd - d.analytic) <= 1e-2 * std::max(std::abs(d.analytic), gnorm);
    };
    const double gnorm = std::sqrt(dot(grads, grads));
    for (int rep = 0; rep < 3; ++rep) {
      auto d = directional(loss, {params.data()}, {params.size()}, {grads.data()}, 1e-3);
      INFO("fd " << d.fd << " analytic " << d.analytic << " |g| " << gnorm);
      CHECK(within(d, gnorm));
    }
    // Per-tensor check: each tensor's gradient alone (catches a wrong tensor hidden by the sum).
    for (const auto& t : layout.tensors) {
      std::vector<float> gt(grads.begin() + t.offset, grads.begin() + t.offset + t.numel);
      auto d = directional(loss, {params.data() + t.offset}, {size_t(t.numel)},
                           {grads.data() + t.offset}, 1e-3);
      INFO(t.name << ": fd " << d.fd << " analytic " << d.analytic);
      CHECK(within(d, std::sqrt(dot(gt, gt))));
    }
  }
}

TEST_CASE("activation recompute gives bit-identical loss and gradients", "[grad]") {
  // Three ways: every activation kept; recompute keeping each layer's attention output and LSE
  // (model.recompute_attention = false, the default); recompute of everything.
  ModelConfig m = tiny_model(false, 2);
  const ParamLayout layout = make_param_layout(m);
  std::vector<float> params(layout.total);
  init_params(m, layout, fresh_seed(), params.data());
  const int64_t B = 1, T = 33;
  Batch batch(B, T, m.vocab_size);
  struct Run {
    bool recompute, recompute_attention;
    std::vector<float> g;
    double loss = 0;
    int64_t bytes = 0;
  };
  std::vector<Run> runs = {{false, false, {}}, {true, false, {}}, {true, true, {}}};
  for (Run& r : runs) {
    m.recompute = r.recompute, m.recompute_attention = r.recompute_attention;
    r.g.assign(layout.total, 0.0f);
    Model<Cpu> model(cpu_backend, m, layout, params.data(), r.g.data());
    model.configure(B, T, 1e4);
    r.loss = model.forward_backward(batch.tok.data(), batch.tgt.data()).sum;
    r.bytes = model.activation_bytes();
  }
  for (size_t i = 1; i < runs.size(); ++i) {
    INFO("recompute_attention " << runs[i].recompute_attention);
    CHECK(runs[i].loss == runs[0].loss);
    CHECK(std::memcmp(runs[i].g.data(), runs[0].g.data(), runs[0].g.size() * sizeof(float)) == 0);
  }
  CHECK(runs[1].bytes < runs[0].bytes);  // keeping the attention costs less than keeping everything
  CHECK(runs[2].bytes < runs[1].bytes);  // and more than keeping nothing
}

TEST_CASE("initialisation is deterministic and layout independent", "[op]") {
  const ModelConfig m = tiny_model(false, 2);
  const ParamLayout layout = make_param_layout(m);
  std::vector<float> a(layout.total), b(layout.total);
  init_params(m, layout, 42, a.data());
  init_params(m, layout, 42, b.data());
  CHECK(a == b);
  // A row block of wq, initialised on its own, equals those rows of the full tensor.
  const ParamTensor& wq = layout.find("layers/01/wq");
  ParamLayout part;
  ParamTensor blk = wq;
  blk.start = {8, 0}, blk.count = {16, wq.shape[1]}, blk.offset = 0, blk.numel = 16 * wq.shape[1];
  part.tensors = {blk}, part.total = blk.numel;
  std::vector<float> c(part.total);
  init_params(m, part, 42, c.data());
  CHECK(std::memcmp(c.data(), a.data() + wq.offset + 8 * wq.shape[1], c.size() * 4) == 0);
  // Norm weights start at 1; other tensors have the requested spread.
  for (int64_t i = 0; i < m.d_model; ++i) CHECK(a[layout.find("norm").offset + i] == 1.0f);
  const ParamTensor& e = layout.find("embed");
  double ss = 0;
  for (int64_t i = 0; i < e.numel; ++i) ss += double(a[e.offset + i]) * a[e.offset + i];
  CHECK(std::sqrt(ss / e.numel) == Approx(m.init_std).epsilon(0.05));
}

TEST_CASE("reconfiguring for a new stage shape equals a fresh model", "[grad]") {
  // Stage 1 (B=4, T=32) then stage 2 (B=1, T=128): as many rows, four times the positions.
  const ModelConfig m = tiny_model(false, 2);
  const ParamLayout layout = make_param_layout(m);
  std::vector<float> params(layout.total), g1(layout.total, 0.0f), g2(layout.total, 0.0f);
  init_params(m, layout, fresh_seed(), params.data());
  Batch first(4, 32, m.vocab_size), second(1, 128, m.vocab_size);
  Model<Cpu> reused(cpu_backend, m, layout, params.data(), g1.data());
  reused.configure(4, 32, 1e4);
  reused.forward_backward(first.tok.data(), first.tgt.data());
  std::fill(g1.begin(), g1.end(), 0.0f);
  reused.configure(1, 128, 5e4);
  const LossSum a = reused.forward_backward(second.tok.data(), second.tgt.data());
  Model<Cpu> fresh(cpu_backend, m, layout, params.data(), g2.data());
  fresh.configure(1, 128, 5e4);
  const LossSum b = fresh.forward_backward(second.tok.data(), second.tgt.data());
  CHECK(a.sum == b.sum);
  CHECK(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
}
