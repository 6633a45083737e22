// comm.h — the collectives longctx uses, behind one interface: MpiComm now; the CUDA backend adds
// an NCCL implementation of the same class. A Comm is one group of ranks (an axis of the process
// grid). Element counts are int64_t; MpiComm cuts every operation into pieces an int can count.
// Every rank of the group must make the same calls in the same order (they are collectives),
// except exchange(), which pairs with the neighbours' exchange().
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <mpi.h>

namespace longctx {

class Comm {
 public:
  virtual ~Comm() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }

  virtual void all_reduce_sum(float* x, int64_t n) const = 0;
  virtual void all_reduce_sum(double* x, int64_t n) const = 0;
  virtual void all_reduce_max(float* x, int64_t n) const = 0;
  // in: size()·n floats (block i goes to rank i); out: n floats = sum over ranks of their block.
  virtual void reduce_scatter_sum(const float* in, float* out, int64_t n) const = 0;
  // in: n floats; out: size()·n floats, block i from rank i.
  virtual void all_gather(const float* in, float* out, int64_t n) const = 0;

  // Non-blocking ring step: send n floats to rank `to`, receive n floats from rank `from`; messages
  // of different purposes in flight together use different tags.
  // Both buffers must stay untouched until wait(). At most one exchange per Pending.
  struct Pending {
    MPI_Request req[16];
    int count = 0;
  };
  virtual void exchange(const float* send, float* recv, int64_t n, int to, int from, int tag,
                        Pending& p) const = 0;
  virtual void wait(Pending& p) const = 0;
  // Lets the transport advance a pending exchange (MPI progresses large messages mostly inside
  // MPI calls): called between pieces of the compute that the exchange should overlap.
  virtual void progress(Pending& p) const = 0;

 protected:
  int rank_ = 0, size_ = 1;
};

// The MPI implementation (host memory). Does not own the communicator. Messages go in pieces of
// at most `piece` elements (2^30 by default; tests pass small pieces to exercise the cut paths).
class MpiComm final : public Comm {
 public:
  static constexpr int64_t kMaxPiece = int64_t(1) << 30;
  explicit MpiComm(MPI_Comm c, int64_t piece = kMaxPiece);
  MPI_Comm mpi() const { return comm_; }
  void all_reduce_sum(float* x, int64_t n) const override;
  void all_reduce_sum(double* x, int64_t n) const override;
  void all_reduce_max(float* x, int64_t n) const override;
  void reduce_scatter_sum(const float* in, float* out, int64_t n) const override;
  void all_gather(const float* in, float* out, int64_t n) const override;
  void exchange(const float* send, float* recv, int64_t n, int to, int from, int tag,
                Pending& p) const override;
  void wait(Pending& p) const override;
  void progress(Pending& p) const override;

 private:
  MPI_Comm comm_;
  int64_t piece_;
};

}  // namespace longctx

#include "longctx/job.h"  // abort_job, broadcast_string (were declared here)
