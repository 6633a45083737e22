// comm_nccl.h — Comm for device buffers over NCCL: the transport between GPUs of their own
// (parallel.transport = "nccl", or "auto" when every rank has a GPU to itself). Built with CUDA
// and NCCL only (LONGCTX_NCCL). NCCL refuses two ranks on one GPU: several ranks sharing a GPU use
// StagedMpiComm (comm_staged.h).
//
// One NCCL communicator per group, made collectively from a unique id that the group's rank 0
// creates and MPI broadcasts. Every operation is enqueued without a host wait (fp32, bf16 sums —
// NCCL adds bf16 in its own order and rounds per step —, f64, i32, u8). The collectives run on the
// caller's stream. An exchange (the ring's K/V and dK/dV) runs on the communicator's own
// communication stream, so that it overlaps the attention kernels the caller enqueues meanwhile:
// the communication stream first waits for an event recorded on the caller's stream (the send
// buffer is written, and the receive buffer no longer read, by the work enqueued before the
// exchange), runs the grouped ncclSend/ncclRecv, and records a second event, which wait() makes
// the caller's stream wait for. Events only: no host synchronisation in the step. Exchanges of one
// communicator run in the order they were issued (one communication stream), alike on every rank.
#pragma once

#include <cstdint>
#include <vector>

#include <mpi.h>

#include "longctx/comm.h"

namespace longctx {

class NcclComm final : public Comm {
 public:
  // Collective over `c`. The calling rank's current CUDA device must be its GPU.
  explicit NcclComm(MPI_Comm c);
  ~NcclComm() override;
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

 private:
  void do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream s) const override;
  void do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream s) const override;
  void do_all_gather(const void* in, void* out, int64_t n, DType t, Stream s) const override;
  Handle do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from, int channel,
                     Stream s) const override;
  void do_wait(Handle& h) const override;
  void do_progress(Handle& h) const override {}

  struct Pending {
    void* ready = nullptr;   // cudaEvent_t on the caller's stream: the buffers may be touched
    void* done = nullptr;    // cudaEvent_t on the communication stream: the exchange completed
    void* stream = nullptr;  // the caller's cudaStream_t, which wait() orders after `done`
    bool busy = false;
    uint32_t gen = 0;
  };
  void* comm_ = nullptr;   // ncclComm_t
  void* side_ = nullptr;   // cudaStream_t (non-blocking) of the exchanges
  mutable std::vector<Pending> pending_;
};

}  // namespace longctx
