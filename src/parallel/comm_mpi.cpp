// comm_mpi.cpp — Comm over MPI (host buffers). MPI counts are int, so every operation goes in
// pieces of at most piece() elements (2^30 by default): all-reduces and exchanges piece by piece;
// a reduce-scatter or all-gather whose block exceeds a piece becomes one MPI_Reduce or MPI_Bcast
// per rank and piece (rare: a ZeRO shard over 4 GiB). Open MPI's reductions are deterministic for
// the same group, message size, process placement and MCA settings, which bit-identical resume
// relies on (resume on the same layout and node count).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "longctx/comm.h"
#include "longctx/common.h"

namespace longctx {

namespace {

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  FAIL_ERROR("{} failed: {}", what, std::string(msg, size_t(len)));
}
}  // namespace

MpiComm::MpiComm(MPI_Comm c, int64_t piece) : comm_(c), piece_(piece) {
  CHECK(piece >= 1 && piece <= kMaxPiece, "MpiComm: piece {} is outside [1, 2^30]", piece);
  MPI_Comm_rank(c, &rank_);
  MPI_Comm_size(c, &size_);
}

void MpiComm::all_reduce_sum(float* x, int64_t n) const {
  if (size_ == 1) return;
  for (int64_t i = 0; i < n; i += piece_)
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, x + i, int(std::min(piece_, n - i)), MPI_FLOAT, MPI_SUM, comm_),
              "MPI_Allreduce");
}

void MpiComm::all_reduce_sum(double* x, int64_t n) const {
  if (size_ == 1) return;
  for (int64_t i = 0; i < n; i += piece_)
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, x + i, int(std::min(piece_, n - i)), MPI_DOUBLE, MPI_SUM, comm_),
              "MPI_Allreduce");
}

void MpiComm::all_reduce_max(float* x, int64_t n) const {
  if (size_ == 1) return;
  for (int64_t i = 0; i < n; i += piece_)
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, x + i, int(std::min(piece_, n - i)), MPI_FLOAT, MPI_MAX, comm_),
              "MPI_Allreduce");
}

void MpiComm::reduce_scatter_sum(const float* in, float* out, int64_t n) const {
  if (size_ == 1) {
    std::copy_n(in, n, out);
    return;
  }
  if (n <= piece_) {
    mpi_check(MPI_Reduce_scatter_block(in, out, int(n), MPI_FLOAT, MPI_SUM, comm_),
              "MPI_Reduce_scatter_block");
    return;
  }
  for (int r = 0; r < size_; ++r)  // block r, piece by piece, summed onto rank r
    for (int64_t i = 0; i < n; i += piece_)
      mpi_check(MPI_Reduce(in + r * n + i, rank_ == r ? out + i : nullptr, int(std::min(piece_, n - i)),
                           MPI_FLOAT, MPI_SUM, r, comm_),
                "MPI_Reduce");
}

void MpiComm::all_gather(const float* in, float* out, int64_t n) const {
  if (size_ == 1) {
    if (out != in) std::copy_n(in, n, out);
    return;
  }
  if (n <= piece_) {
    mpi_check(MPI_Allgather(in, int(n), MPI_FLOAT, out, int(n), MPI_FLOAT, comm_), "MPI_Allgather");
    return;
  }
  if (out + rank_ * n != in) std::copy_n(in, n, out + rank_ * n);
  for (int r = 0; r < size_; ++r)  // block r, piece by piece, from rank r
    for (int64_t i = 0; i < n; i += piece_)
      mpi_check(MPI_Bcast(out + r * n + i, int(std::min(piece_, n - i)), MPI_FLOAT, r, comm_), "MPI_Bcast");
}

void MpiComm::exchange(const float* send, float* recv, int64_t n, int to, int from, int tag,
                       Pending& p) const {
  CHECK(p.count == 0, "Comm::exchange: the previous exchange on this Pending was not waited for");
  CHECK(n <= 8 * piece_, "ring exchange of {} floats: over the {} that 16 requests carry", n, 8 * piece_);
  for (int64_t i = 0; i < n; i += piece_) {
    const int cnt = int(std::min(piece_, n - i));
    mpi_check(MPI_Irecv(recv + i, cnt, MPI_FLOAT, from, tag, comm_, &p.req[p.count++]), "MPI_Irecv");
    mpi_check(MPI_Isend(send + i, cnt, MPI_FLOAT, to, tag, comm_, &p.req[p.count++]), "MPI_Isend");
  }
}

void MpiComm::progress(Pending& p) const {
  int done = 0;
  if (p.count) mpi_check(MPI_Testall(p.count, p.req, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  if (done) p.count = 0;
}

void MpiComm::wait(Pending& p) const {
  if (p.count) mpi_check(MPI_Waitall(p.count, p.req, MPI_STATUSES_IGNORE), "MPI_Waitall");
  p.count = 0;
}

}  // namespace longctx
