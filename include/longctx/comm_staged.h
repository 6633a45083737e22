// comm_staged.h — Comm over MPI for DEVICE buffers, staged through pinned host memory: the
// transport where NCCL cannot serve (several ranks on one GPU, which NCCL refuses) or is not
// wanted (parallel.transport = "mpi"). Built with CUDA only (LONGCTX_CUDA).
//
// Every operation first waits for its stream (the device data must be complete), copies the data
// to pinned host memory, runs the MpiComm operation there and copies the result back, in pieces
// of at most `stage_bytes` per buffer, so the pinned memory is fixed however large the tensor.
// An exchange stages its send buffer at once and copies the received data to the device in
// wait() (or in the progress() that finds it done). Results are those of MpiComm bit for bit;
// bf16 sums (which MpiComm refuses) are reduced in fp32 on the host and rounded once. A group of
// one rank copies on the device (asynchronously, on the stream) and stages nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mpi.h>

#include "longctx/comm_mpi.h"

namespace longctx {

class StagedMpiComm final : public Comm {
 public:
  static constexpr size_t kStageBytes = size_t(64) << 20;
  // Does not own the communicator. stage_bytes: the pinned buffer of each staging slot (tests
  // pass small ones to exercise the pieces).
  explicit StagedMpiComm(MPI_Comm c, size_t stage_bytes = kStageBytes);
  ~StagedMpiComm() override;
  StagedMpiComm(const StagedMpiComm&) = delete;
  StagedMpiComm& operator=(const StagedMpiComm&) = delete;

 private:
  void do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream s) const override;
  void do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream s) const override;
  void do_all_gather(const void* in, void* out, int64_t n, DType t, Stream s) const override;
  Handle do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from, int channel,
                     Stream s) const override;
  void do_wait(Handle& h) const override;
  void do_progress(Handle& h) const override;

  // An exchange in flight: its pinned send/receive copies and where the received data goes.
  struct Pending {
    void *host_send = nullptr, *host_recv = nullptr;
    size_t capacity = 0;  // bytes of each pinned buffer (grown once, reused)
    void* device_recv = nullptr;
    size_t bytes = 0;
    Handle inner;  // the MpiComm exchange of the host copies
    bool busy = false;
    uint32_t gen = 0;
  };
  void finish(Pending& p) const;  // received bytes to the device
  void stage() const;             // pins the collectives' staging buffers on first use

  MpiComm mpi_;
  size_t stage_bytes_;
  mutable void *a_ = nullptr, *b_ = nullptr;  // pinned staging buffers of the collectives (first use)
  mutable std::vector<Pending> pending_;  // reused; their pinned buffers grow once
};

}  // namespace longctx
