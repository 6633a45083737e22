// parallel_fixture.h — what the layout tests share (test_parallel.cpp, test_parallel_gpu8.cpp):
// the layout of one run, the world's ranks, pass/fail combined over all ranks, the first n ranks
// as a communicator, one seed and one directory for all ranks, the worst tensor error.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "catch.h"
#include "longctx/config.h"
#include "longctx/params.h"
#include "util.h"

namespace longctx::test {

struct Layout {
  int dp, tp, sp;
  const char* tp_mode;
  const char* ring;
  bool recompute = false;  // model.recompute (the attention kept: recompute_attention false)
};

// The model and stage of a layout test's deck; the defaults are the CPU tests' tiny model.
struct DeckShape {
  int64_t d_model = 32, n_heads = 4, n_kv_heads = 2, d_ff = 64, seq_len = 128;
  double init_std = 0.05, rope_theta = 10000, lr = 2e-3;
  const char* device = "auto";     // run.device
  const char* transport = "auto";  // parallel.transport
};

// A deck for layout l. The global batch is dp·batch_accum·micro_batch = 2·1·2 samples for every
// layout (dp = 2 runs batch_accum 1, dp = 1 runs batch_accum 2), so all layouts see the same 4
// sequences.
inline Config layout_deck(const Layout& l, const std::string& dir, uint64_t seed, int64_t steps = 10,
                          const DeckShape& m = {}) {
  const std::string text = fmt::format(R"(
[run]
out_dir = "{}"
seed = {}
device = "{}"
[model]
vocab_size = 264
d_model = {}
n_layers = 2
n_heads = {}
n_kv_heads = {}
d_ff = {}
init_std = {}
recompute = {}
[parallel]
dp = {}
tp = {}
sp = {}
tp_mode = "{}"
ring = "{}"
transport = "{}"
[optim]
lr = {}
[[stage]]
seq_len = {}
rope_theta = {}
steps = {}
batch_accum = {}
micro_batch = 2
)",
                                       dir, seed, m.device, m.d_model, m.n_heads, m.n_kv_heads, m.d_ff, m.init_std,
                                       l.recompute ? "true" : "false", l.dp, l.tp, l.sp, l.tp_mode, l.ring,
                                       m.transport, m.lr, m.seq_len, m.rope_theta, steps, 2 / l.dp);
  return parse_deck_text(text, "layout.toml");
}

inline int world_rank() {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int s;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// True on every rank iff `ok` holds on every rank.
inline bool all_ranks(bool ok) {
  int v = ok ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return v == 1;
}

// The first n ranks of the world (MPI_COMM_NULL on the others).
inline MPI_Comm first_ranks(int n) {
  MPI_Comm c;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &c);
  return c;
}

// A test that needs n ranks fails with fewer (make test runs the [mpi] tests with -np 8); every
// rank sees the same world size, so all fail here together, before any collective.
inline void require_ranks(int n) {
  INFO("this test needs " << n << " MPI ranks and has " << world_size() << ": run it as mpirun -np " << n
                          << " (or more) build/longctx_tests '[mpi]'");
  REQUIRE(world_size() >= n);
}

// One seed (rank 0's seed_for(tag): see util.h) and one scratch directory for all ranks.
inline uint64_t shared_seed(const std::string& tag) {
  uint64_t s = seed_for(tag);
  MPI_Bcast(&s, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  return s;
}
inline std::string shared_dir(const std::string& tag) {
  std::string d = world_rank() == 0 ? temp_dir(tag) : std::string(256, ' ');
  char buf[256] = {};
  std::strncpy(buf, d.c_str(), sizeof(buf) - 1);
  MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
  return buf;
}

// Worst relative L2 error over the model's tensors.
inline double worst_tensor_error(const ParamLayout& full, const std::vector<float>& a, const std::vector<float>& ref) {
  double worst = 0.0;
  for (const auto& t : full.tensors) {
    double e = 0, r = 0;
    for (int64_t i = t.offset; i < t.offset + t.numel; ++i)
      e += std::pow(double(a[i]) - ref[i], 2), r += std::pow(double(ref[i]), 2);
    worst = std::max(worst, std::sqrt(e / std::max(r, 1e-30)));
  }
  return worst;
}

inline std::string name(const Layout& l) {
  return fmt::format("{}×{}×{} (dp×tp×sp) {} {}{}", l.dp, l.tp, l.sp, l.tp_mode, l.ring, l.recompute ? " recompute" : "");
}


}  // namespace longctx::test
