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
#if defined(LONGCTX_NCCL)
#include "longctx/comm_nccl.h"
#endif

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

#if defined(LONGCTX_NCCL)
// NCCL between ranks needs a GPU per rank (the multi-GPU work); here each rank runs a group of one
// on MPI_COMM_SELF, which every GPU count allows: the operations must return their inputs (sum of
// one), copy blocks in place and out of place, and an exchange with itself must deliver.
TEST_CASE("NcclComm on a group of one returns, copies and delivers device buffers", "[gpu][nccl]") {
  REQUIRE(gpu::gpu_available());
  const NcclComm nccl(MPI_COMM_SELF);
  REQUIRE(nccl.size() == 1);
  const int64_t n = 4099;
  const std::vector<float> x = values<float>(0, n, 5);
  Dev<float> a(x), b(sz(n));
  nccl.all_reduce_sum(a.p, n);
  CHECK(same_bits(a.get(), x));
  nccl.all_reduce_max(a.p, n);
  CHECK(same_bits(a.get(), x));
  nccl.reduce_scatter_sum(a.p, b.p, n);
  CHECK(same_bits(b.get(), x));
  Dev<float> c(sz(n));
  nccl.all_gather(b.p, c.p, n);
  CHECK(same_bits(c.get(), x));
  nccl.all_gather(c.p, c.p, n);  // in place: the block is this rank's own
  CHECK(same_bits(c.get(), x));
  // bf16 and f64 pass through unchanged too.
  std::vector<uint16_t> hb = bits(x);
  Dev<uint16_t> db(hb);
  nccl.all_reduce_sum(reinterpret_cast<bf16*>(db.p), n);
  CHECK(db.get() == hb);
  std::vector<double> hd = values<double>(0, n, 6);
  Dev<double> dd(hd);
  nccl.all_reduce_sum(dd.p, n);
  CHECK(dd.get() == hd);
  // An exchange with itself (the ring of one rank), then wait.
  Dev<float> got(sz(n));
  Comm::Handle h = nccl.exchange(flat(a.p, n), flat(got.p, n), 0, 0, 0);
  nccl.wait(h);
  CHECK(!h.active());
  CHECK(same_bits(got.get(), x));
}
#endif

#endif  // LONGCTX_CUDA
