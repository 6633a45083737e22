// Tests of HDF5 checkpoints (src/io/checkpoint_*.cpp): round trips, layouts, errors, names.
#include <hdf5.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/bf16.h"
#include "longctx/checkpoint.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;

namespace {

Config small_config() {
  Config c;  // defaults are valid; a small GQA model
  c.model.vocab_size = 264, c.model.d_model = 32, c.model.n_layers = 2;
  c.model.n_heads = 4, c.model.n_kv_heads = 2, c.model.d_ff = 40;
  // Stages that some_state() is consistent with (resume checks it): 116 + 7 = global_step 123.
  c.stages = {StageConfig{512, 1e4, 116, 1, 1}, StageConfig{1024, 12345.678, 20, 1, 1}};
  return c;
}

TrainState some_state() {
  TrainState st;
  st.stage = 1, st.stage_step = 7, st.global_step = 123;
  st.tokens_seen = (int64_t(1) << 40) + 5, st.samples_seen = 777, st.seq_len = 1024;
  st.rope_theta = 12345.678, st.seed = 0xdeadbeefcafebabeULL;
  return st;
}

// A whole model's state on one rank: params, and the optimizer shard [0, total).
struct Buffers {
  ParamLayout layout;
  std::vector<float> params, master, m, v;
  explicit Buffers(const ModelConfig& mc, bool random = true) : layout(make_param_layout(mc)) {
    const size_t n = size_t(layout.total);
    if (random) {  // moments on the scales AdamW gives them
      params = test::randn(n), master = test::randn(n);
      m = test::randn(n, 1e-3f), v = test::randn(n, 1e-6f);
    } else {  // NaN: anything not read back shows
      params.assign(n, NAN), master.assign(n, NAN), m.assign(n, NAN), v.assign(n, NAN);
    }
  }
  CheckpointIO io(int64_t lo = 0, int64_t hi = -1) {
    if (hi < 0) hi = layout.total;
    return CheckpointIO{&layout, params.data(), true, lo, hi, master.data(), m.data(), v.data()};
  }
};

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

void set_serial(bool on) {
  if (on)
    setenv("LONGCTX_CKPT_SERIAL", "1", 1);
  else
    unsetenv("LONGCTX_CKPT_SERIAL");
}

// Opens a file read-write to edit it (the tests' way to make damaged checkpoints).
struct Edit {
  hid_t f;
  explicit Edit(const std::string& p) : f(H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
    REQUIRE(f >= 0);
  }
  ~Edit() { H5Fclose(f); }
};

// A dataset read through HDF5's own conversion to native float (what h5py or h5dump would see).
std::vector<float> read_as_float(const std::string& path, const std::string& dset) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dset.c_str(), H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  std::vector<float> out(size_t(H5Sget_simple_extent_npoints(s)));
  herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
  H5Sclose(s), H5Dclose(d), H5Fclose(f);
  REQUIRE(rc >= 0);
  return out;
}

}  // namespace

TEST_CASE("flat_range_slabs matches a brute-force element map", "[ckpt]") {
  std::mt19937_64 gen(test::fresh_seed());
  for (int iter = 0; iter < 3000; ++iter) {
    const int nd = 1 + int(gen() % 4);
    std::vector<int64_t> shape(static_cast<size_t>(nd));
    int64_t n = 1;
    for (auto& d : shape) d = 1 + int64_t(gen() % 6), n *= d;
    int64_t lo = int64_t(gen() % uint64_t(n + 1)), hi = int64_t(gen() % uint64_t(n + 1));
    if (lo > hi) std::swap(lo, hi);
    const auto slabs = flat_range_slabs(shape, lo, hi);
    INFO("shape " << nd << "-D, n " << n << ", range [" << lo << ", " << hi << ")");
    REQUIRE(slabs.size() <= size_t(2 * nd - 1));
    // Every element of every slab, in slab order and row-major inside each: must be lo, lo+1, ...
    std::vector<int64_t> got;
    for (const auto& s : slabs) {
      REQUIRE(s.start.size() == size_t(nd));
      std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
      int64_t cnt = 1;
      for (int d = 0; d < nd; ++d) {
        REQUIRE(s.count[d] > 0);
        REQUIRE(s.start[d] + s.count[d] <= shape[d]);
        cnt *= s.count[d];
      }
      for (int64_t k = 0; k < cnt; ++k) {
        int64_t flat = 0;
        for (int d = 0; d < nd; ++d) flat = flat * shape[d] + s.start[d] + idx[d];
        got.push_back(flat);
        for (int d = nd - 1; d >= 0 && ++idx[d] == s.count[d]; --d) idx[d] = 0;
      }
    }
    std::vector<int64_t> want;
    for (int64_t i = lo; i < hi; ++i) want.push_back(i);
    REQUIRE(got == want);
  }
  CHECK(flat_range_slabs({5, 7}, 0, 35).size() == 1);  // whole tensor: one slab
  CHECK(flat_range_slabs({5, 7}, 3, 31).size() == 3);  // partial row, rows 1-3, partial row
  CHECK(!test::error_of([] { flat_range_slabs({5, 7}, 3, 36); }).empty());
}

TEST_CASE("checkpoint round trip: fp32 state exact, /model rounded to bf16", "[ckpt]") {
  const Config cfg = small_config();
  const std::string dir = test::temp_dir("ckpt-roundtrip");
  const std::string path = checkpoint_path(dir, 123);
  CHECK(fs::path(path).filename() == "ckpt_0000123.h5");
  Buffers a(cfg.model);
  const TrainState st = some_state();
  write_checkpoint(path, cfg, a.io(), st, MPI_COMM_WORLD);
  CHECK(fs::exists(path));
  CHECK(!fs::exists(path + ".tmp"));

  Buffers b(cfg.model, false);
  const TrainState got = read_checkpoint(path, cfg, b.io(), true, MPI_COMM_WORLD);
  const size_t n = size_t(a.layout.total);
  CHECK(same_bits(b.master.data(), a.master.data(), n));
  CHECK(same_bits(b.m.data(), a.m.data(), n));
  CHECK(same_bits(b.v.data(), a.v.data(), n));
  CHECK(same_bits(b.params.data(), a.master.data(), n));  // weights come from the fp32 master copy
  CHECK(got.stage == st.stage);
  CHECK(got.stage_step == st.stage_step);
  CHECK(got.global_step == st.global_step);
  CHECK(got.tokens_seen == st.tokens_seen);
  CHECK(got.samples_seen == st.samples_seen);
  CHECK(got.seq_len == st.seq_len);
  CHECK(std::bit_cast<uint64_t>(got.rope_theta) == std::bit_cast<uint64_t>(st.rope_theta));
  CHECK(got.seed == st.seed);

  SECTION("without /optimizer the weights come from bf16 /model") {
    const std::string copy = dir + "/weights_only.h5";
    fs::copy_file(path, copy);
    {
      Edit e(copy);
      REQUIRE(H5Ldelete(e.f, "/optimizer", H5P_DEFAULT) >= 0);
    }
    Buffers c(cfg.model, false);
    read_checkpoint(copy, cfg, c.io(), false, MPI_COMM_WORLD);
    // bf16 keeps 8 significant bits: round to nearest is off by at most half an ulp, 2^-8·2^e
    // <= 2^-8·|x|; and the values must be exactly the round-to-nearest-even ones.
    int64_t bad = 0, bad_bound = 0;
    for (size_t i = 0; i < n; ++i) {
      const float x = a.params[i], r = c.params[i];
      bad += std::bit_cast<uint32_t>(r) != std::bit_cast<uint32_t>(bf16_round(x));
      bad_bound += !(std::fabs(x - r) <= 0x1p-8f * std::fabs(x));
    }
    CHECK(bad == 0);
    CHECK(bad_bound == 0);
    // HDF5's own bf16 -> float conversion (what other tools see) gives the same values.
    const auto& t = a.layout.find("layers/01/wq");
    const auto seen = read_as_float(copy, "/model/layers/01/wq");
    CHECK(same_bits(seen.data(), c.params.data() + t.offset, size_t(t.numel)));
    CHECK_THAT(test::error_of([&] { read_checkpoint(copy, cfg, c.io(), true, MPI_COMM_WORLD); }),
               Catch::Matchers::Contains("no optimizer state"));
  }

  SECTION("reads back into shards of the flat buffer") {
    const auto& lt = a.layout;
    const auto& wq = lt.find("layers/00/wq");
    // Uneven shards: one inside a tensor starting mid-row, one crossing several tensors, the tail.
    const std::pair<int64_t, int64_t> shards[] = {
        {wq.offset + 5, wq.offset + wq.numel - 3},
        {wq.offset + 17, lt.find("layers/01/wk").offset + 9},
        {lt.total - 1000, lt.total}};
    for (auto [lo, hi] : shards) {
      const size_t k = size_t(hi - lo);
      std::vector<float> master(k, NAN), m(k, NAN), v(k, NAN), params(size_t(lt.total), NAN);
      CheckpointIO io{&lt, params.data(), true, lo, hi, master.data(), m.data(), v.data()};
      read_checkpoint(path, cfg, io, true, MPI_COMM_WORLD);
      INFO("shard [" << lo << ", " << hi << ")");
      CHECK(same_bits(master.data(), a.master.data() + lo, k));
      CHECK(same_bits(m.data(), a.m.data() + lo, k));
      CHECK(same_bits(v.data(), a.v.data() + lo, k));
      CHECK(same_bits(params.data(), a.master.data(), n));
    }
  }

  SECTION("the summary shows the tree") {  // h5dump's view: the [h5dump] test below
    const std::string s = checkpoint_summary(path);
    CHECK_THAT(s, Catch::Matchers::Contains("longctx-checkpoint v1"));
    CHECK_THAT(s, Catch::Matchers::Contains("C=32 L=2 NH=4 NKV=2 F=40"));
    CHECK_THAT(s, Catch::Matchers::Contains("global_step 123"));
    CHECK_THAT(s, Catch::Matchers::Contains(fmt::format("({} parameters)", a.layout.total)));
  }
}

// Tagged [h5dump]: where h5dump is not on PATH, tests/main.cpp leaves it out and reports it skipped.
TEST_CASE("h5dump and h5ls show a checkpoint's tree", "[ckpt][h5dump]") {
  const Config cfg = small_config();
  const std::string path = checkpoint_path(test::temp_dir("ckpt-h5dump"), 123);
  Buffers a(cfg.model);
  write_checkpoint(path, cfg, a.io(), some_state(), MPI_COMM_WORLD);
  std::string out;
  REQUIRE(test::run_command("h5dump -H " + path, &out) == 0);
  CHECK_THAT(out, Catch::Matchers::Contains("GROUP \"layers\"") && Catch::Matchers::Contains("DATASET \"wq\""));
  REQUIRE(test::run_command("h5dump -a /format " + path, &out) == 0);
  CHECK_THAT(out, Catch::Matchers::Contains("\"longctx-checkpoint\""));
  REQUIRE(test::run_command("h5dump -d /model/norm " + path, &out) == 0);
  CHECK_THAT(out, Catch::Matchers::Contains("DATASET \"/model/norm\""));
  REQUIRE(test::run_command("h5ls -r " + path + " | grep /model/layers/00/wq", &out) == 0);
}

TEST_CASE("parallel and serial checkpoint writes give the same file contents", "[ckpt]") {
  const Config cfg = small_config();
  const std::string dir = test::temp_dir("ckpt-serial");
  Buffers a(cfg.model);
  const TrainState st = some_state();
  write_checkpoint(dir + "/par.h5", cfg, a.io(), st, MPI_COMM_WORLD);
  set_serial(true);
  write_checkpoint(dir + "/ser.h5", cfg, a.io(), st, MPI_COMM_WORLD);
  Buffers b(cfg.model, false);
  read_checkpoint(dir + "/par.h5", cfg, b.io(), true,
                  MPI_COMM_WORLD);  // serial read of a parallel file
  set_serial(false);
  Buffers c(cfg.model, false);
  read_checkpoint(dir + "/ser.h5", cfg, c.io(), true, MPI_COMM_WORLD);
  const size_t n = size_t(a.layout.total);
  for (const Buffers* x : {&b, &c}) {
    CHECK(same_bits(x->master.data(), a.master.data(), n));
    CHECK(same_bits(x->m.data(), a.m.data(), n));
    CHECK(same_bits(x->v.data(), a.v.data(), n));
  }
  for (const auto& t : a.layout.tensors) {
    INFO(t.name);
    const auto p = read_as_float(dir + "/par.h5", "/model/" + t.name);
    const auto s = read_as_float(dir + "/ser.h5", "/model/" + t.name);
    CHECK(same_bits(p.data(), s.data(), p.size()));
  }
}

TEST_CASE("checkpoint errors name the file and what is wrong", "[ckpt]") {
  using Catch::Matchers::Contains;
  const Config cfg = small_config();
  const std::string dir = test::temp_dir("ckpt-errors");
  const std::string path = dir + "/ckpt_0000010.h5";
  Buffers a(cfg.model);
  write_checkpoint(path, cfg, a.io(), some_state(), MPI_COMM_WORLD);
  Buffers b(cfg.model, false);
  auto read = [&](const std::string& p, const Config& c = small_config()) {
    return test::error_of([&] { read_checkpoint(p, c, b.io(), true, MPI_COMM_WORLD); });
  };

  CHECK_THAT(read(dir + "/nope.h5"), Contains(dir + "/nope.h5") && Contains("does not exist"));

  const std::string text = dir + "/text.h5";
  std::ofstream(text) << "this is not an HDF5 file\n";
  CHECK_THAT(read(text), Contains(text) && Contains("not an HDF5 file"));

  const std::string half = dir + "/half.h5";
  fs::copy_file(path, half);
  fs::resize_file(half, fs::file_size(half) / 2);
  CHECK_THAT(read(half), Contains(half));

  Config other = small_config();
  other.model.d_model = 64;
  CHECK_THAT(read(path, other), Contains("model.d_model = 32") && Contains("64") && Contains(path));

  const std::string newer = dir + "/newer.h5";
  fs::copy_file(path, newer);
  {
    Edit e(newer);
    hid_t at = H5Aopen(e.f, "format_version", H5P_DEFAULT);
    const int64_t v = 99;
    REQUIRE(H5Awrite(at, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(at);
  }
  CHECK_THAT(read(newer), Contains("format version 99"));

  const std::string holey = dir + "/holey.h5";
  fs::copy_file(path, holey);
  {
    Edit e(holey);
    REQUIRE(H5Ldelete(e.f, "/optimizer/m/layers/01/wq", H5P_DEFAULT) >= 0);
  }
  CHECK_THAT(read(holey), Contains("/optimizer/m/layers/01/wq") && Contains(holey));

#if H5_VERSION_GE(1, 10, 5)
  // One flipped byte inside a chunk of stored data is caught by the Fletcher32 checksum.
  const std::string flipped = dir + "/flipped.h5";
  fs::copy_file(path, flipped);
  haddr_t addr = 0;
  {
    hid_t f = H5Fopen(flipped.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/optimizer/v/embed", H5P_DEFAULT);
    hsize_t off[2];
    unsigned mask = 0;
    hsize_t size = 0;
    hid_t space = H5Dget_space(d);
    REQUIRE(H5Dget_chunk_info(d, space, 0, off, &mask, &addr, &size) >= 0);
    H5Sclose(space), H5Dclose(d), H5Fclose(f);
  }
  {
    std::fstream io(flipped, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(std::streamoff(addr + 100));
    char c = 0;
    io.read(&c, 1);
    c = char(c ^ 0x10);
    io.seekp(std::streamoff(addr + 100));
    io.write(&c, 1);
  }
  CHECK_THAT(read(flipped), Contains("/optimizer/v/embed") && Contains(flipped));
#endif
}

TEST_CASE("latest_checkpoint picks the highest step and ignores the rest", "[ckpt]") {
  const std::string dir = test::temp_dir("ckpt-latest");
  CHECK(latest_checkpoint(dir).empty());
  CHECK(latest_checkpoint(dir + "/missing").empty());
  for (const char* name : {"ckpt_0000005.h5", "ckpt_0000120.h5", "ckpt_0000300.h5.tmp",
                           "ckpt_abc.h5", "notes.txt", "ckpt_0000400.h5x", "ckpt_.h5"})
    std::ofstream(dir + "/" + name) << "x";
  fs::create_directory(dir + "/ckpt_0000500.h5");  // a directory is no checkpoint
  CHECK(latest_checkpoint(dir) == checkpoint_path(dir, 120));
  CHECK(checkpoint_path("runs/x", 12345678) == "runs/x/ckpt_12345678.h5");
  std::ofstream(checkpoint_path(dir, 12345678)) << "x";  // more than 7 digits still counts
  CHECK(latest_checkpoint(dir) == checkpoint_path(dir, 12345678));
}

// Two ways of spreading a model over the ranks, each written (parallel and serial) and read back
// in the one-rank layout with uneven optimizer shards:
//   "row blocks": every matrix split by rows (like tensor parallelism), each rank writes its
//   blocks; "zero": the whole model on every rank, /model written by rank 0 only (the others take
//   part
//           with empty selections), the optimizer state as uneven shards crossing tensors mid-row.
// Runs on any number of ranks, on purpose: make test runs it on 8; without mpirun (e.g.
// build/longctx_tests '[ckpt]') it runs on 1, trivially (one shard).
TEST_CASE("checkpoints written from several ranks read back under another layout", "[ckpt][mpi]") {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const Config cfg = small_config();
  const ParamLayout full = make_param_layout(cfg.model);
  // Element i (row-major, full tensor) of tensor t: params x, master -x, m 2x, v x².
  auto value = [](size_t t, int64_t i) {
    return float(std::sin(0.7 * double(t) + 0.013 * double(i)) + 0.01 * double(t));
  };
  // Uneven cut of [0, total) into `size` shards: shard r is [cut(r), cut(r + 1)).
  auto cut = [&](int r, int64_t shift) {
    return r == 0      ? 0
           : r == size ? full.total
                       : std::min(full.total, full.total * r / size + shift * r);
  };

  ParamLayout rows;  // this rank's row block of each matrix (rows cut unevenly), norms whole
  for (const auto& t : full.tensors) {
    ParamTensor b = t;
    b.replica = t.shape.size() == 1 && rank > 0;  // norms: written by rank 0 only
    if (t.shape.size() == 2) {
      const int64_t R = t.shape[0];
      const int64_t r0 = R * rank / size + (rank > 0),
                    r1 = R * (rank + 1) / size + (rank + 1 < size);
      b.start = {r0, 0}, b.count = {r1 - r0, t.shape[1]};
    }
    b.offset = rows.total, b.numel = b.count[0] * (b.count.size() == 2 ? b.count[1] : 1);
    rows.total += b.numel;
    rows.tensors.push_back(b);
  }
  // Fills the flat range [lo, hi) of layout l with the values above: x (may be null) gets params,
  // master, m, v (hi - lo floats each) the optimizer state.
  auto fill = [&](const ParamLayout& l, int64_t lo, int64_t hi, float* x, float* master, float* m,
                  float* v) {
    for (size_t k = 0; k < l.tensors.size(); ++k) {
      const auto& t = l.tensors[k];
      const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
      for (int64_t i = std::max(lo, t.offset) - t.offset;
           i < std::min(hi, t.offset + t.numel) - t.offset; ++i) {
        const float e = t.replica ? 1e30f : value(k, t.start[0] * cols + i);  // must not land
        const int64_t f = t.offset + i - lo;
        if (x) x[f] = e;
        if (master) master[f] = -e, m[f] = 2 * e, v[f] = e * e;
      }
    }
  };
  std::string dir = rank == 0 ? test::temp_dir("ckpt-mpi") : std::string();
  int len = int(dir.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  dir.resize(size_t(len));
  MPI_Bcast(dir.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);

  for (bool serial : {false, true}) {
    for (bool zero : {false, true}) {
      set_serial(serial);
      const std::string path =
          dir + "/" + (serial ? "serial" : "parallel") + (zero ? "-zero.h5" : "-rows.h5");
      const ParamLayout& l = zero ? full : rows;
      const int64_t lo = zero ? cut(rank, 37) : 0, hi = zero ? cut(rank + 1, 37) : rows.total;
      std::vector<float> x(size_t(l.total)), ma(size_t(hi - lo)), mo(ma.size()), vo(ma.size());
      fill(l, 0, l.total, x.data(), nullptr, nullptr, nullptr);
      fill(l, lo, hi, nullptr, ma.data(), mo.data(), vo.data());
      CheckpointIO wio{&l, x.data(), !zero || rank == 0, lo, hi, ma.data(), mo.data(), vo.data()};
      write_checkpoint(path, cfg, wio, some_state(), MPI_COMM_WORLD);

      // Read back in the whole-model layout, shards cut differently.
      const int64_t rlo = cut(rank, -11), rhi = cut(rank + 1, -11);
      const size_t k = size_t(rhi - rlo);
      std::vector<float> rx(size_t(full.total), NAN), rma(k, NAN), rm(k, NAN), rv(k, NAN);
      CheckpointIO rio{&full, rx.data(), true, rlo, rhi, rma.data(), rm.data(), rv.data()};
      read_checkpoint(path, cfg, rio, true, MPI_COMM_WORLD);
      std::vector<float> ex(size_t(full.total)), ema(k), em(k), ev(k);
      fill(full, 0, full.total, ex.data(), nullptr, nullptr, nullptr);
      fill(full, rlo, rhi, nullptr, ema.data(), em.data(), ev.data());
      for (auto& e : ex) e = -e;  // the weights come from the master copy
      int64_t bad = !same_bits(rx.data(), ex.data(), ex.size()) +
                    !same_bits(rma.data(), ema.data(), k) + !same_bits(rm.data(), em.data(), k) +
                    !same_bits(rv.data(), ev.data(), k);
      // /model as written: rounded params (the bf16 of x), read through HDF5's conversion.
      if (rank == 0)
        for (size_t t = 0; t < full.tensors.size(); ++t) {
          const auto got = read_as_float(path, "/model/" + full.tensors[t].name);
          for (size_t i = 0; i < got.size(); ++i)
            bad += got[i] != bf16_round(-ex[size_t(full.tensors[t].offset) + i]);
        }
      int64_t all_bad = 0;
      MPI_Allreduce(&bad, &all_bad, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
      INFO((serial ? "serial" : "parallel")
           << (zero ? " zero" : " row-block") << " write from " << size << " rank(s)");
      CHECK(all_bad == 0);
    }
  }
  set_serial(false);
}
