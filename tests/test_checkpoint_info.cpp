// test_checkpoint_info.cpp — `longctx info CKPT` verifies the data checksums: every dataset is
// read in full (Fletcher32 checked by HDF5), one flipped byte inside a chunk's stored data is
// reported naming the dataset and calling the file corrupt; --no-verify says it read attributes only.
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/checkpoint.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// Flips one bit of the byte `at` bytes into the first chunk of `dset` (its file address from
// H5Dget_chunk_info), in place.
void flip_in_chunk(const std::string& path, const char* dset, haddr_t at) {
  haddr_t addr = 0;
  hsize_t size = 0;
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    hsize_t off[2];
    unsigned mask = 0;
    const herr_t rc = H5Dget_chunk_info(d, space, 0, off, &mask, &addr, &size);
    H5Sclose(space), H5Dclose(d), H5Fclose(f);
    REQUIRE(rc >= 0);
    REQUIRE(size > at);
  }
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(std::streamoff(addr + at));
  char c = 0;
  io.read(&c, 1);
  c = char(c ^ 0x04);
  io.seekp(std::streamoff(addr + at));
  io.write(&c, 1);
  REQUIRE(io.good());
}

}  // namespace

#if H5_VERSION_GE(1, 10, 5)
TEST_CASE("longctx info verifies every dataset's checksum and names a corrupt one", "[ckpt]") {
  Config cfg;
  cfg.model.vocab_size = 264, cfg.model.d_model = 32, cfg.model.n_layers = 2;
  cfg.model.n_heads = 4, cfg.model.n_kv_heads = 2, cfg.model.d_ff = 40;
  const std::string dir = test::temp_dir("ckpt-info");
  const std::string path = dir + "/ckpt_0000003.h5";
  const ParamLayout layout = make_param_layout(cfg.model);
  const size_t n = size_t(layout.total);
  std::vector<float> params = test::randn(n), master = test::randn(n);
  std::vector<float> m = test::randn(n, 1e-3f), v = test::randn(n, 1e-6f);
  TrainState st;
  st.stage_step = 3, st.global_step = 3, st.tokens_seen = 300, st.samples_seen = 3;
  st.seq_len = 64, st.rope_theta = 1e4;
  write_checkpoint(path, cfg, {&layout, params.data(), true, 0, layout.total, master.data(),
                               m.data(), v.data()}, st, MPI_COMM_WORLD);

  // /model and /optimizer/{master,m,v}: four datasets per tensor, all read.
  const size_t datasets = 4 * layout.tensors.size();
  CHECK_THAT(checkpoint_summary(path),
             Contains(fmt::format("checksums verified: {} datasets read in full", datasets)));
  CHECK_THAT(checkpoint_summary(path, false), Contains("NOT verified") &&
                                                  Contains("attributes and shapes only"));

  for (const char* dset : {"/optimizer/m/layers/01/wq", "/model/embed"}) {
    const std::string bad = dir + "/flipped" + std::to_string(dset[1]) + ".h5";
    fs::copy_file(path, bad, fs::copy_options::overwrite_existing);
    flip_in_chunk(bad, dset, 37);
    INFO(dset);
    CHECK_THAT(test::error_of([&] { checkpoint_summary(bad); }),
               Contains(dset) && Contains("corrupt") && Contains(bad));
    CHECK(test::error_of([&] { checkpoint_summary(bad, false); }).empty());  // not read: no error

    // The command: a non-zero exit naming the dataset (the binary is built before the tests).
    if (fs::exists("build/longctx")) {
      std::string out;
      CHECK(test::run_command("build/longctx info " + bad, &out) != 0);
      CHECK_THAT(out, Contains(dset) && Contains("corrupt"));
      CHECK(test::run_command("build/longctx info --no-verify " + bad, &out) == 0);
      CHECK_THAT(out, Contains("NOT verified"));
    }
  }
}
#endif
