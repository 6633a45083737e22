// comm_mpi.cpp — Comm over MPI (host buffers). MPI counts are int, so every operation goes in
// pieces of at most piece() elements (2^30 by default): all-reduces and exchanges piece by piece;
// a reduce-scatter or all-gather whose block exceeds a piece becomes one MPI_Reduce or MPI_Bcast
// per rank and piece (rare: a ZeRO shard over 4 GiB). Open MPI's reductions are deterministic for
// the same group, message size, process placement and MCA settings, which bit-identical resume
// relies on (resume on the same layout and node count).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "longctx/comm_mpi.h"
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

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::kF32: return MPI_FLOAT;
    case DType::kF64: return MPI_DOUBLE;
    case DType::kBF16: return MPI_UINT16_T;  // moved as bits, never reduced (see comm_mpi.h)
    case DType::kI32: return MPI_INT32_T;
    case DType::kU8: return MPI_UINT8_T;
  }
  FAIL_ERROR("MpiComm: unknown dtype {}", int(t));
}

MPI_Datatype reducible(DType t) {
  CHECK_HINT(t == DType::kF32 || t == DType::kF64, "reduce in fp32 or f64",
             "MpiComm: {} reductions are not supported", dtype_name(t));
  return mpi_type(t);
}

const char* at(const void* p, int64_t i, DType t) {
  return static_cast<const char*>(p) + size_t(i) * dtype_size(t);
}
char* at(void* p, int64_t i, DType t) { return static_cast<char*>(p) + size_t(i) * dtype_size(t); }
}  // namespace

MpiComm::MpiComm(MPI_Comm c, int64_t piece) : comm_(c), piece_(piece) {
  CHECK(piece >= 1 && piece <= kMaxPiece, "MpiComm: piece {} is outside [1, 2^30]", piece);
  MPI_Comm_rank(c, &rank_);
  MPI_Comm_size(c, &size_);
}

void MpiComm::do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream) const {
  const MPI_Datatype mt = reducible(t);  // refused alike on every group size
  if (size_ == 1) return;
  for (int64_t i = 0; i < n; i += piece_)
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, at(x, i, t), int(std::min(piece_, n - i)), mt,
                            op == ReduceOp::kSum ? MPI_SUM : MPI_MAX, comm_),
              "MPI_Allreduce");
}

void MpiComm::do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream) const {
  const MPI_Datatype mt = reducible(t);
  if (size_ == 1) {
    if (out != in) std::memcpy(out, in, size_t(n) * dtype_size(t));
    return;
  }
  if (n <= piece_) {
    mpi_check(MPI_Reduce_scatter_block(in, out, int(n), mt, MPI_SUM, comm_), "MPI_Reduce_scatter_block");
    return;
  }
  for (int r = 0; r < size_; ++r)  // block r, piece by piece, summed onto rank r
    for (int64_t i = 0; i < n; i += piece_)
      mpi_check(MPI_Reduce(at(in, r * n + i, t), rank_ == r ? at(out, i, t) : nullptr,
                           int(std::min(piece_, n - i)), mt, MPI_SUM, r, comm_),
                "MPI_Reduce");
}

void MpiComm::do_all_gather(const void* in, void* out, int64_t n, DType t, Stream) const {
  const size_t block = size_t(n) * dtype_size(t);
  if (size_ == 1) {
    if (out != in) std::memcpy(out, in, block);
    return;
  }
  const MPI_Datatype mt = mpi_type(t);
  if (n <= piece_) {  // in place (in = this rank's block of out) must say so: MPI forbids aliased buffers
    const bool in_place = in == at(out, rank_ * n, t);
    mpi_check(MPI_Allgather(in_place ? MPI_IN_PLACE : in, in_place ? 0 : int(n), in_place ? MPI_DATATYPE_NULL : mt, out,
                            int(n), mt, comm_),
              "MPI_Allgather");
    return;
  }
  if (at(out, rank_ * n, t) != in) std::memcpy(at(out, rank_ * n, t), in, block);
  for (int r = 0; r < size_; ++r)  // block r, piece by piece, from rank r
    for (int64_t i = 0; i < n; i += piece_)
      mpi_check(MPI_Bcast(at(out, r * n + i, t), int(std::min(piece_, n - i)), mt, r, comm_), "MPI_Bcast");
}

Comm::Handle MpiComm::do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from,
                                  int channel, Stream) const {
  CHECK(n <= 8 * piece_, "ring exchange of {} elements: over the {} that 16 requests carry", n, 8 * piece_);
  CHECK(channel >= 0 && channel < 8, "Comm::exchange: channel {} is outside 0..7", channel);
  const Handle h = acquire_slot(slots_);
  Slot& sl = slots_[size_t(h.id)];
  sl.count = 0;
  const MPI_Datatype mt = mpi_type(t);
  for (int64_t i = 0; i < n; i += piece_) {
    const int cnt = int(std::min(piece_, n - i));
    mpi_check(MPI_Irecv(at(recv, i, t), cnt, mt, from, 1 + channel, comm_, &sl.req[size_t(sl.count++)]),
              "MPI_Irecv");
    mpi_check(MPI_Isend(at(send, i, t), cnt, mt, to, 1 + channel, comm_, &sl.req[size_t(sl.count++)]),
              "MPI_Isend");
  }
  return h;
}

void MpiComm::do_progress(Handle& h) const {
  if (!h.active()) return;
  Slot& sl = live_slot(slots_, h);
  int done = 0;
  if (sl.count) mpi_check(MPI_Testall(sl.count, sl.req.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  if (done || !sl.count) sl.busy = false, sl.count = 0, h.id = -1;
}

void MpiComm::do_wait(Handle& h) const {
  if (!h.active()) return;
  Slot& sl = live_slot(slots_, h);
  if (sl.count) mpi_check(MPI_Waitall(sl.count, sl.req.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  sl.busy = false, sl.count = 0, h.id = -1;
}

}  // namespace longctx
