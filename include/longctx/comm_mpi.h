// comm_mpi.h — Comm over MPI, for host memory. Does not own the communicator (parallel/groups.cpp
// does). MPI counts are int, so messages go in pieces of at most `piece` elements (2^30 by default;
// tests pass small pieces to exercise the cut paths). bf16 moves (gather, exchange) but is not
// reduced here: longctx reduces in fp32 (gradients) or f64 (statistics).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <mpi.h>

#include "longctx/comm.h"
#include "longctx/job.h"  // abort_job, broadcast_string

namespace longctx {

class MpiComm final : public Comm {
 public:
  static constexpr int64_t kMaxPiece = int64_t(1) << 30;
  explicit MpiComm(MPI_Comm c, int64_t piece = kMaxPiece);
  MPI_Comm mpi() const { return comm_; }

 private:
  void do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream s) const override;
  void do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream s) const override;
  void do_all_gather(const void* in, void* out, int64_t n, DType t, Stream s) const override;
  Handle do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from, int channel,
                     Stream s) const override;
  void do_wait(Handle& h) const override;
  void do_progress(Handle& h) const override;

  // The requests of one exchange (up to 8 pieces each way); slots are reused, never freed.
  struct Slot {
    std::array<MPI_Request, 16> req;
    int count = 0;
    bool busy = false;
    uint32_t gen = 0;  // bumped at each exchange: a handle from an earlier one is stale
  };
  MPI_Comm comm_;
  int64_t piece_;
  mutable std::vector<Slot> slots_;
};

}  // namespace longctx
