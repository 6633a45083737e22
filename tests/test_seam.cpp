// test_seam.cpp — the backend seam: typed views, the arena, the CPU backend's shape checks, the
// model's arena counted before allocation, and the memory plan that refuses what does not fit.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/arena.h"
#include "longctx/backend/cpu.h"
#include "longctx/memory.h"
#include "longctx/model.h"
#include "longctx/params.h"
#include "util.h"

using namespace longctx;
using namespace longctx::test;

namespace {

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % Arena::kAlign == 0; }

// Takes buffers of odd sizes and mixed types; returns their pointers.
std::vector<const void*> take_odd(Arena& a) {
  std::vector<const void*> out;
  out.push_back(a.take<float>({37, 3}).data);  // 444 bytes: would misalign the next buffer
  out.push_back(a.take<bf16>({5}).data);
  out.push_back(a.take<double>({7, 1}).data);
  out.push_back(a.take<int32_t>({0}).data);    // empty
  out.push_back(a.take<uint8_t>({1}).data);
  out.push_back(a.take<float>({1000, 13}).data);
  return out;
}

}  // namespace

TEST_CASE("arena: every view starts on a 256-byte boundary and binding replays counting", "[op]") {
  Arena count;
  for (const void* p : take_odd(count)) CHECK(p == nullptr);  // counting hands out no memory
  CHECK(count.bytes() % Arena::kAlign == 0);
  CHECK(count.bytes() == Arena::round_up(444) + Arena::round_up(10) + Arena::round_up(56) + 0 +
                             Arena::round_up(1) + Arena::round_up(52000));
  const Cpu be;
  const Cpu::Memory mem = be.alloc(count.bytes());
  REQUIRE(aligned(mem.get()));
  Arena bound(mem.get(), count.bytes());
  const std::vector<const void*> ptrs = take_odd(bound);
  for (const void* p : ptrs) CHECK(aligned(p));
  CHECK(bound.bytes() == count.bytes());
  // Asking the bound arena for more than was counted is an error, not an overrun.
  CHECK_THAT(error_of([&] { bound.take<float>({1}); }), Catch::Matchers::Contains("counting pass"));
  // Memory comes zeroed.
  const auto* bytes = static_cast<const unsigned char*>(mem.get());
  bool zero = true;
  for (size_t i = 0; i < count.bytes(); ++i) zero = zero && bytes[i] == 0;
  CHECK(zero);
}

TEST_CASE("typed views: rows and view keep the elements; bad cuts are refused", "[op]") {
  std::vector<float> x = randn(6 * 4);
  const Tensor<float> t(x.data(), {6, 4});
  CHECK(t.numel() == 24);
  CHECK(t.row_size() == 4);
  CHECK(t.dtype == DType::kF32);
  const Tensor<float> r = t.rows(2, 3);
  CHECK(r.data == x.data() + 8);
  CHECK(r.size(0) == 3);
  CHECK(r.numel() == 12);
  const Tensor<float> v = t.view({2, 3, 2, 2});
  CHECK(v.data == x.data());
  CHECK(v.ndim == 4);
  CHECK_THAT(error_of([&] { t.rows(5, 2); }), Catch::Matchers::Contains("outside [0, 6)"));
  CHECK_THAT(error_of([&] { t.view({5, 5}); }), Catch::Matchers::Contains("24 elements viewed as 25"));
  const Tensor<const float> c = t;  // a writable view reads as a read-only one
  CHECK(c.data == x.data());
  CHECK(dtype_size(Tensor<bf16>::dtype) == 2);
  CHECK(std::string(dtype_name(DType::kBF16)) == "bf16");
}

TEST_CASE("the CPU backend checks the shapes of the views it is given, naming them", "[op]") {
  const Cpu be;
  std::vector<float> in = randn(5 * 8), W = randn(3 * 8), out(5 * 3), bad(5 * 4);
  be.linear_fwd(Tensor<float>(out.data(), {5, 3}), Tensor<const float>(in.data(), {5, 8}),
                Tensor<const float>(W.data(), {3, 8}));
  // The same op through the reference gives the same bits.
  std::vector<float> ref(5 * 3);
  cpu::linear_fwd(ref.data(), in.data(), W.data(), 5, 8, 3);
  CHECK(out == ref);
  CHECK_THAT(error_of([&] {
               be.linear_fwd(Tensor<float>(bad.data(), {5, 4}), Tensor<const float>(in.data(), {5, 8}),
                             Tensor<const float>(W.data(), {3, 8}));
             }),
             Catch::Matchers::Contains("linear_fwd: out"));
  CHECK_THAT(error_of([&] {
               be.linear_fwd(Tensor<float>(out.data(), {5, 3}), Tensor<const float>(in.data(), {5, 8}),
                             Tensor<const float>(W.data(), {4, 6}));
             }),
             Catch::Matchers::Contains("linear_fwd: W"));
  std::vector<float> rstd(4), w = randn(8);
  CHECK_THAT(error_of([&] {
               be.rmsnorm_fwd(Tensor<float>(out.data(), {5, 3}), Tensor<float>(rstd.data(), {4}),
                              Tensor<const float>(in.data(), {5, 8}), Tensor<const float>(w.data(), {8}), 1e-5f);
             }),
             Catch::Matchers::Contains("rmsnorm_fwd"));
}

TEST_CASE("Model<Cpu> counts its arena before allocating: configure allocates exactly that", "[op]") {
  ModelConfig m;
  m.vocab_size = 264, m.d_model = 32, m.n_layers = 2, m.n_heads = 4, m.n_kv_heads = 2, m.d_ff = 72;
  const ParamLayout layout = make_param_layout(m);
  std::vector<float> params(size_t(layout.total)), grads(size_t(layout.total), 0.0f);
  init_params(m, layout, fresh_seed(), params.data());
  const Cpu be;
  Model<Cpu> model(be, m, layout, params.data(), grads.data());
  const size_t small = model.arena_bytes(1, 37), big = model.arena_bytes(2, 101);  // odd row counts
  CHECK(small % Arena::kAlign == 0);
  CHECK(big > small);
  model.configure(1, 37, 1e4);
  CHECK(size_t(model.activation_bytes()) == small);
  // A count for another shape leaves the configured views working (the model still computes).
  CHECK(model.arena_bytes(2, 101) == big);
  std::vector<int32_t> tok(37), tgt(37);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int32_t(i * 7 % 259), tgt[i] = int32_t((i * 7 + 3) % 259);
  const LossSum a = model.forward(tok.data(), tgt.data());
  model.configure(2, 101, 1e4);
  CHECK(size_t(model.activation_bytes()) == big);
  model.configure(1, 37, 1e4);  // smaller again: the block is kept, the views reshaped
  CHECK(size_t(model.activation_bytes()) == big);
  const LossSum b = model.forward(tok.data(), tgt.data());
  CHECK(a.sum == b.sum);
  CHECK(a.count == 37);
  // A forward-only model (no gradient buffer) refuses a backward pass.
  Model<Cpu> fwd(be, m, layout, params.data(), nullptr);
  CHECK(fwd.arena_bytes(1, 37) < small);  // no gradient buffers: what eval's memory plan counts
  fwd.configure(1, 37, 1e4);
  CHECK(fwd.forward(tok.data(), tgt.data()).sum == a.sum);
  CHECK_THAT(error_of([&] { fwd.forward_backward(tok.data(), tgt.data()); }),
             Catch::Matchers::Contains("without gradients"));
}

TEST_CASE("memory sizes parse and print as a person writes them", "[op]") {
  CHECK(parse_bytes("512M") == 512ll << 20);
  CHECK(parse_bytes("64G") == 64ll << 30);
  CHECK(parse_bytes("1.5K") == 1536);
  CHECK(parse_bytes("123") == 123);
  CHECK(parse_bytes("12X") == -1);
  CHECK(parse_bytes("") == -1);
  CHECK(parse_bytes("-5G") == -1);
  CHECK(format_bytes(3.0 * (1 << 30)) == "3.0 GiB");
  CHECK(format_bytes(1536.0) == "1.5 KiB");
  CHECK(available_memory() > 0);  // /proc/meminfo or the cgroup answers on Linux
}

TEST_CASE("a stage that does not fit in memory is refused before any work, naming it", "[e2e]") {
  const std::string dir = temp_dir("memory");
  const std::string run = "build/longctx train input/tiny.toml --set run.out_dir=" + dir;
  std::string out;
  // The state alone (tiny model: ~22 MiB of parameters, gradients and Adam state) over 8 MiB.
  int rc = run_command("LONGCTX_MEMORY=8M " + run, &out);
  INFO(out);
  CHECK(rc != 0);
  CHECK_THAT(out, Catch::Matchers::Contains("train: the parameters, gradients and optimizer state do not fit"));
  CHECK_THAT(out, Catch::Matchers::Contains("8.0 MiB is available (LONGCTX_MEMORY)"));
  CHECK_THAT(out, Catch::Matchers::Contains("hint: raise parallel.tp"));
  CHECK(out.find("| loss") == std::string::npos);
  // Stage 2 at a million tokens: tens of GiB of activations, refused at the start, not at stage 2.
  rc = run_command("LONGCTX_MEMORY=4G " + run + " --set stage.2.seq_len=1048576", &out);
  INFO(out);
  CHECK(rc != 0);
  CHECK_THAT(out, Catch::Matchers::Contains("train: activations of stage 2 (seq_len 1048576, micro_batch"));
  CHECK_THAT(out, Catch::Matchers::Contains("model.recompute = true"));
  CHECK(out.find("| loss") == std::string::npos);
  // The same for the evaluation, before it reads any checkpoint.
  rc = run_command("LONGCTX_MEMORY=1G build/longctx eval input/tiny.toml --set run.out_dir=" + dir +
                       " --lengths 1048576 --depths 0.5 --samples 1",
                   &out);
  INFO(out);
  CHECK(rc != 0);
  CHECK_THAT(out, Catch::Matchers::Contains("eval: activations of length 1048576 do not fit"));
  // A malformed LONGCTX_MEMORY is refused by name.
  rc = run_command("LONGCTX_MEMORY=lots " + run, &out);
  CHECK(rc != 0);
  CHECK_THAT(out, Catch::Matchers::Contains("LONGCTX_MEMORY='lots' is not a size"));
}
