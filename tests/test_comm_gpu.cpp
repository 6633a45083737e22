// test_comm_gpu.cpp — the staged MPI transport for device buffers (comm_staged.h) gives what
// MpiComm gives on the same data in host memory, bit for bit, whole and cut into pieces. Runs on
// any number of ranks sharing one GPU (mpirun -np N build/longctx_tests '[gpu][mpi]'); values are
// integers, so every sum is exact in any order.
#include "catch.h"

#if defined(LONGCTX_CUDA)
#include <mpi.h>

#include "gpu_util.h"
#include "longctx/comm_staged.h"
#include "longctx/flash.h"

using namespace longctx;
using namespace longctx::test;

namespace {

bool all_ranks_ok(bool ok) {
  int v = ok ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return v == 1;
}

template <class T>
std::vector<T> values(int rank, int64_t n, int salt) {
  std::vector<T> v(sz(n));
  for (int64_t i = 0; i < n; ++i) v[sz(i)] = T(float((rank * 37 + i * 11 + salt) % 1000));
  return v;
}

}  // namespace

TEST_CASE("the staged MPI transport moves device buffers as MpiComm moves host ones", "[gpu][mpi]") {
  REQUIRE(gpu::gpu_available());
  int me = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const MpiComm host(MPI_COMM_WORLD);
  const int64_t n = 1000;  // per rank
  for (size_t stage : {size_t(8 * P * 7), StagedMpiComm::kStageBytes}) {  // pieces of a few elements; whole
    INFO("stage bytes " << stage << ", ranks " << P);
    const StagedMpiComm dev(MPI_COMM_WORLD, stage);
    bool ok = true;
    // all-reduce sum and max, fp32 and f64
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      std::vector<float> h = values<float>(me, P * n, 1);
      Dev<float> d(h);
      if (op == ReduceOp::kSum) host.all_reduce_sum(h.data(), P * n), dev.all_reduce_sum(d.p, P * n);
      else host.all_reduce_max(h.data(), P * n), dev.all_reduce_max(d.p, P * n);
      ok = ok && same_bits(d.get(), h);
    }
    std::vector<double> hd = values<double>(me, n, 2);
    Dev<double> dd(hd);
    host.all_reduce_sum(hd.data(), n), dev.all_reduce_sum(dd.p, n);
    ok = ok && dd.get() == hd;
    // reduce-scatter and all-gather
    const std::vector<float> x = values<float>(me, P * n, 3);
    std::vector<float> rs(sz(n)), ag(sz(P * n));
    host.reduce_scatter_sum(x.data(), rs.data(), n);
    Dev<float> dx(x), drs(sz(n)), dag(sz(P * n));
    dev.reduce_scatter_sum(dx.p, drs.p, n);
    ok = ok && same_bits(drs.get(), rs);
    host.all_gather(x.data(), ag.data(), n);
    dev.all_gather(dx.p, dag.p, n);
    ok = ok && same_bits(dag.get(), ag);
    // exchanges in flight together, fp32 and bf16, one completed by progress() or wait()
    const int next = (me + 1) % P, prev = (me + P - 1) % P;
    Dev<float> got(sz(n));
    const std::vector<uint16_t> xb = bits(values<float>(me, n, 4));
    Dev<uint16_t> db(xb), gotb(sz(n));
    Comm::Handle h1 = dev.exchange(flat(dx.p, n), flat(got.p, n), next, prev, 0);
    Comm::Handle h2 = dev.exchange(flat(reinterpret_cast<bf16*>(db.p), n), flat(reinterpret_cast<bf16*>(gotb.p), n),
                                   prev, next, 1);
    dev.progress(h1);
    dev.wait(h1), dev.wait(h2);
    ok = ok && !h1.active() && !h2.active();
    ok = ok && same_bits(got.get(), values<float>(prev, n, 3)) && gotb.get() == bits(values<float>(next, n, 4));
    CHECK(all_ranks_ok(ok));
  }
}

#endif  // LONGCTX_CUDA
