// bench_ring.cpp — ring attention's efficiency over several GPUs (issue 11): the forward and
// backward of RingAttention<Cuda> (the model's own ring: zigzag or contiguous chunks, K/V and
// dK/dV travelling over the sequence-parallel group) against the ideal, one GPU's time for 1/sp of
// the whole sequence's causal attention. Not a test: numbers go to docs/PERFORMANCE.md.
//   mpirun -np SP build/bench_ring [--tloc 8192,32768] [--heads 16] [--kv-heads 16] [--hd 128]
//                                  [--ring zigzag|contiguous] [--transport nccl|mpi] [--iters 5]
// Each rank takes GPU (node-local rank mod GPUs); --transport mpi stages through host memory (and
// lets several ranks share one GPU, to check the tool on one). Per T_loc (tokens per GPU): the
// ring at T = SP·T_loc, medians of --iters timings after 2 warm-ups, each the slowest rank's
// (barrier, forward + backward, device sync, barrier); then rank 0 alone runs the same
// RingAttention without a group on the whole T (the same flash kernels, blockwise) and the ideal is
// that time / SP. Efficiency = ideal / ring. FLOPs: fwd 4·T²·hd·H/2 (causal), bwd 2.5 × fwd.
// Inputs random normal bf16 (never zeros).
//
//   build/bench_ring --simulate SP [the options above]          (one rank, one GPU)
// The compute-only bound, for a machine without SP GPUs: rank r's whole ring (its segment pairs,
// merges, dK/dV accumulation: every kernel it launches) timed alone for each r = 0..SP-1, with
// the exchanges doing nothing (the received blocks are not the neighbours' data; the kernels'
// times do not depend on it). The ring on SP GPUs takes at least the slowest rank's time, plus
// whatever of the transfers and NCCL's own kernels does not overlap: bound = ideal / max_r.
#include <cuda_runtime.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "longctx/backend/cuda.h"
#include "longctx/bf16.h"
#include "longctx/comm_staged.h"
#include "longctx/common.h"
#include "bench_args.h"
#include "longctx/ring_attention.h"
#if defined(LONGCTX_NCCL)
#include "longctx/comm_nccl.h"
#endif

using namespace longctx;

namespace {

// A ring group that exists only in name: rank r of `size`, every exchange completed at once with
// nothing moved (the compute-only bound). Collectives are refused: RingAttention exchanges only.
class NameOnlyComm final : public Comm {
 public:
  NameOnlyComm(int rank, int size) { rank_ = rank, size_ = size; }

 protected:
  void do_all_reduce(void*, int64_t, DType, ReduceOp, Stream) const override { refuse(); }
  void do_reduce_scatter(const void*, void*, int64_t, DType, Stream) const override { refuse(); }
  void do_all_gather(const void*, void*, int64_t, DType, Stream) const override { refuse(); }
  Handle do_exchange(const void*, void*, int64_t, DType, int, int, int, Stream) const override { return {}; }
  void do_wait(Handle&) const override {}
  void do_progress(Handle&) const override {}

 private:
  [[noreturn]] static void refuse() { throw_error(LONGCTX_WHERE, "bench_ring --simulate: the ring asked for a collective"); }
};

struct Shape {
  int64_t T, NH, NKV, HS;
};

// Seconds per forward + backward of the ring over `sp` (nullptr: one rank, the whole sequence),
// the median over `iters` runs of the slowest rank.
double time_ring(const Cuda& be, const Comm* sp, MPI_Comm world, bool zigzag, const Shape& sh, int iters,
                 uint64_t seed) {
  RingAttention<Cuda> ring(be, sp, zigzag);
  ring.configure(1, sh.T, sh.NH, sh.NKV, sh.HS);
  const int64_t Tl = ring.layout().T_loc, q = sh.NH * sh.HS, kv = sh.NKV * sh.HS;
  auto take_all = [&](Arena& a, std::vector<Tensor<bf16>>& t, Tensor<float>& lse) {
    ring.take_buffers(a, true);
    t.clear();
    for (int64_t w : {q, kv, kv, q, q, q, kv, kv}) t.push_back(a.take<bf16>({Tl, w}));  // q k v o dout dq dk dv
    lse = a.take<float>({Tl, sh.NH});
  };
  std::vector<Tensor<bf16>> t;
  Tensor<float> lse;
  Arena count;
  take_all(count, t, lse);
  const Cuda::Memory mem = be.alloc(count.bytes());
  Arena bound(mem.get(), count.bytes());
  take_all(bound, t, lse);
  be.reserve_scratch(Cuda::op_scratch_bytes(ScratchShape{Tl, sh.NH, sh.HS, Tl, q, 1}));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (size_t i : {0u, 1u, 2u, 4u}) {  // q, k, v, dout
    std::vector<bf16> h(size_t(t[i].numel()));
    for (bf16& x : h) x = bf16{bf16_bits(normal(rng))};
    be.upload(t[i], h.data());
  }
  auto once = [&] {
    ring.forward(t[3], lse, t[0], t[1], t[2]);
    ring.backward(t[5], t[6], t[7], t[4], t[0], t[1], t[2], t[3], lse);
  };
  std::vector<double> sec;
  for (int i = 0; i < iters + 2; ++i) {
    MPI_Barrier(world);
    const double t0 = MPI_Wtime();
    once();
    be.sync();
    double dt = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, world);
    if (i >= 2) sec.push_back(dt);
  }
  std::sort(sec.begin(), sec.end());
  return sec[sec.size() / 2];
}

double causal_flops(const Shape& sh) {  // forward + backward
  return 3.5 * 4.0 * double(sh.T) * double(sh.T) * double(sh.HS) * double(sh.NH) / 2.0;
}

// --simulate: each rank's ring alone on this GPU, against the ideal (see the header).
void simulate_ring(const Cuda& be, int sp, bool zigzag, const std::vector<int64_t>& tlocs, int64_t NH, int64_t NKV,
                   int64_t HS, int iters) {
  std::printf("longctx ring attention, compute-only bound of sp=%d simulated on one %s, ring %s, H=%lld KV=%lld "
              "hd=%lld, causal\n", sp, be.describe().c_str(), zigzag ? "zigzag" : "contiguous", (long long)NH,
              (long long)NKV, (long long)HS);
  for (const int64_t tl : tlocs) {
    const Shape sh{tl * sp, NH, NKV, HS};
    std::vector<double> per(static_cast<size_t>(sp), 0.0);
    for (int r = 0; r < sp; ++r) {
      const NameOnlyComm c(r, sp);
      per[size_t(r)] = time_ring(be, &c, MPI_COMM_SELF, zigzag, sh, iters, 1 + uint64_t(r));
    }
    const double one_s = time_ring(be, nullptr, MPI_COMM_SELF, true, sh, std::max(1, iters / 2), 7);
    const double slowest = *std::max_element(per.begin(), per.end()), ideal = one_s / sp;
    double mean = 0.0;
    for (double s : per) mean += s / sp;
    std::string ranks;
    for (double s : per) ranks += fmt::format(" {:.2f}", s * 1e3);
    std::printf("sp=%d T_loc=%lld T=%lld: ranks' compute (ms)%s | slowest %.2f, mean %.2f | one GPU on T %.1f ms, "
                "ideal %.2f ms | bound %.1f%% (%.0f TFLOP/s per GPU at the bound)\n", sp, (long long)tl,
                (long long)sh.T, ranks.c_str(), slowest * 1e3, mean * 1e3, one_s * 1e3, ideal * 1e3,
                100.0 * ideal / slowest, causal_flops(sh) / sp / slowest / 1e12);
    std::fflush(stdout);
  }
}

// The ring over every rank of MPI_COMM_WORLD, one GPU each, against the ideal (see the header).
void measure_ring(const Cuda& be, const std::string& transport, bool zigzag, const std::vector<int64_t>& tlocs,
                  int64_t NH, int64_t NKV, int64_t HS, int iters) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::unique_ptr<Comm> sp;
#if defined(LONGCTX_NCCL)
  if (transport == "nccl") sp = std::make_unique<NcclComm>(MPI_COMM_WORLD);
#endif
  if (transport == "mpi") sp = std::make_unique<StagedMpiComm>(MPI_COMM_WORLD);
  CHECK_HINT(sp, "--transport mpi, or a build with NCCL", "bench_ring: transport {} is not available", transport);
  if (rank == 0)
    std::printf("longctx ring attention on %d x %s, transport %s, ring %s, H=%lld KV=%lld hd=%lld, causal\n", size,
                be.describe().c_str(), transport.c_str(), zigzag ? "zigzag" : "contiguous", (long long)NH,
                (long long)NKV, (long long)HS);
  for (const int64_t tl : tlocs) {
    const Shape sh{tl * size, NH, NKV, HS};
    const double ring_s = time_ring(be, sp.get(), MPI_COMM_WORLD, zigzag, sh, iters, 1 + uint64_t(rank));
    double one_s = 0.0;
    if (rank == 0) one_s = time_ring(be, nullptr, MPI_COMM_SELF, true, sh, std::max(1, iters / 2), 7);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      const double flop = causal_flops(sh), ideal = one_s / size;
      std::printf("sp=%d T_loc=%lld T=%lld: ring %.2f ms (%.0f TFLOP/s per GPU) | one GPU on T %.1f ms, ideal %.2f ms "
                  "| efficiency %.1f%%\n", size, (long long)tl, (long long)sh.T, ring_s * 1e3,
                  flop / size / ring_s / 1e12, one_s * 1e3, ideal * 1e3, 100.0 * ideal / ring_s);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int64_t> tlocs = {8192, 32768};
  int64_t NH = 16, NKV = 16, HS = 128;
  int iters = 5, simulate = 0;
  std::string ring_name = "zigzag", transport = "nccl";
  try {  // every rank reads the same command line: every rank refuses it alike, rank 0 says why
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--tloc") tlocs = bench::int_list(a, next());
      else if (a == "--heads") NH = bench::integer(a, next());
      else if (a == "--kv-heads") NKV = bench::integer(a, next());
      else if (a == "--hd") HS = bench::integer(a, next());
      else if (a == "--ring") ring_name = next();
      else if (a == "--transport") transport = next();
      else if (a == "--iters") iters = int(std::max<int64_t>(1, bench::integer(a, next())));
      else if (a == "--simulate") simulate = int(bench::integer(a, next()));
      else throw std::invalid_argument("unknown option " + a + " (see the header of tools/bench_ring.cpp)");
    }
  } catch (const std::invalid_argument& e) {
    if (rank == 0) std::fprintf(stderr, "bench_ring: %s\n", e.what());
    MPI_Finalize();
    return 2;
  }
  try {
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    int local = 0, gpus = 0;
    MPI_Comm_rank(node, &local);
    CHECK(cudaGetDeviceCount(&gpus) == cudaSuccess && gpus > 0, "bench_ring: no GPU");
    const Cuda be(CudaOptions{local % gpus, false});
    CHECK_HINT(ring_name == "zigzag" || ring_name == "contiguous", "--ring zigzag|contiguous", "bench_ring: ring {}",
               ring_name);
    if (simulate) {
      CHECK_HINT(size == 1 && simulate >= 2, "build/bench_ring --simulate 8 (one process)",
                 "bench_ring: --simulate {} on {} ranks", simulate, size);
      simulate_ring(be, simulate, ring_name == "zigzag", tlocs, NH, NKV, HS, iters);
    } else {
      measure_ring(be, transport, ring_name == "zigzag", tlocs, NH, NKV, HS, iters);
    }
    MPI_Comm_free(&node);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ring (rank %d): %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return 0;
}
