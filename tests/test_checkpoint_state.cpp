// test_checkpoint_state.cpp — resume validates every /state value it reads: a checkpoint with one
// /state attribute corrupted (through the HDF5 C API) is refused, the message naming the attribute,
// its value, the allowed range and the file.
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/checkpoint.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// Two stages; the state below is 7 steps into the second (116 + 7 = global_step 123).
Config staged_config() {
  Config c;
  c.model.vocab_size = 264, c.model.d_model = 32, c.model.n_layers = 2;
  c.model.n_heads = 4, c.model.n_kv_heads = 2, c.model.d_ff = 40;
  c.stages = {StageConfig{512, 1e4, 116, 1, 1}, StageConfig{1024, 12345.678, 20, 1, 1}};
  c.deck_path = "deck.toml";
  return c;
}

TrainState good_state() {
  TrainState st;
  st.stage = 1, st.stage_step = 7, st.global_step = 123;
  st.tokens_seen = 123 * 1024, st.samples_seen = 246, st.seq_len = 1024;
  st.rope_theta = 12345.678, st.seed = 99;
  return st;
}

// Overwrites /state attribute `name` of a copy of `path` with v; returns the copy's path.
template <class T>
std::string corrupt(const std::string& path, const std::string& tag, const char* name, T v) {
  const std::string copy = path + "." + tag + ".h5";
  fs::copy_file(path, copy, fs::copy_options::overwrite_existing);
  hid_t f = H5Fopen(copy.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t g = H5Gopen2(f, "/state", H5P_DEFAULT);  // (H5Aopen_by_name + H5Awrite fails in 1.10)
  hid_t a = H5Aopen(g, name, H5P_DEFAULT);
  const herr_t rc =
      H5Awrite(a, std::is_same_v<T, double> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64, &v);
  H5Aclose(a), H5Gclose(g), H5Fclose(f);
  REQUIRE(rc >= 0);
  return copy;
}

}  // namespace

TEST_CASE("resume refuses a corrupted /state value, naming the attribute, value, range and file",
          "[ckpt]") {
  const Config cfg = staged_config();
  const std::string dir = test::temp_dir("ckpt-state");
  const std::string path = dir + "/ckpt_0000123.h5";
  const ParamLayout layout = make_param_layout(cfg.model);
  const size_t n = size_t(layout.total);
  std::vector<float> params = test::randn(n), master = test::randn(n);
  std::vector<float> m = test::randn(n, 1e-3f), v = test::randn(n, 1e-6f);
  const CheckpointIO io{&layout, params.data(), true, 0, layout.total, master.data(), m.data(),
                        v.data()};
  write_checkpoint(path, cfg, io, good_state(), MPI_COMM_WORLD);
  auto resume = [&](const std::string& p) {
    return test::error_of([&] { read_checkpoint(p, cfg, io, true, MPI_COMM_WORLD); });
  };
  REQUIRE(resume(path).empty());  // the valid file resumes

  struct Bad {
    const char* name;
    int64_t value;
    const char* allowed;
  };
  const Bad ints[] = {
      {"stage", -1, ">= 0"},
      {"stage", 2, "0..1"},  // the deck has 2 stages
      {"stage_step", -3, ">= 0"},
      {"stage_step", 21, "0..20"},  // stage[2] has 20 steps
      {"global_step", 5, ">= stage_step = 7"},
      {"global_step", 124, "123"},  // 116 steps of stage[1] + stage_step 7
      {"tokens_seen", -1, ">= global_step"},
      {"samples_seen", -777, ">= global_step"},
      {"seq_len", 0, "2.."},
      {"seq_len", 2048, "1024"},  // stage[2]'s seq_len
  };
  for (const Bad& b : ints) {
    const std::string p = corrupt(path, fmt::format("{}{}", b.name, b.value), b.name, b.value);
    const std::string err = resume(p);
    INFO(b.name << " = " << b.value << ": " << err);
    CHECK_THAT(err, Contains(fmt::format("/state attribute {} = {}", b.name, b.value)) &&
                        Contains(b.allowed) && Contains(p));
  }
  const std::pair<double, const char*> thetas[] = {
      {NAN, "finite, > 0"}, {-1.0, "finite, > 0"}, {10000.0, "12345.678"}};
  for (auto [theta, allowed] : thetas) {
    const std::string p = corrupt(path, fmt::format("theta{}", theta), "rope_theta", theta);
    const std::string err = resume(p);
    INFO("rope_theta = " << theta << ": " << err);
    CHECK_THAT(err, Contains(fmt::format("/state attribute rope_theta = {}", theta)) &&
                        Contains(allowed) && Contains(p));
  }

  // Reading weights only (checkpoint.init_from, eval) checks the values on their own, not
  // against the deck's stages: a later stage of another deck is fine, a negative count is not.
  const std::string later = corrupt(path, "later", "stage", int64_t(5));
  CHECK(test::error_of([&] { read_checkpoint(later, cfg, io, false, MPI_COMM_WORLD); }).empty());
  const std::string neg = corrupt(path, "neg", "samples_seen", int64_t(-1));
  CHECK_THAT(test::error_of([&] { read_checkpoint(neg, cfg, io, false, MPI_COMM_WORLD); }),
             Contains("/state attribute samples_seen = -1"));
}
