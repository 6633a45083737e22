// comm_nccl.cpp — Comm for device buffers over NCCL (comm_nccl.h). Compiled only with CUDA and
// NCCL (LONGCTX_NCCL).
#if defined(LONGCTX_NCCL)
#include "longctx/comm_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include "longctx/common.h"

namespace longctx {

namespace {

void nccl_ok(ncclResult_t r, const char* what) {
  CHECK_HINT(r == ncclSuccess, "NCCL_DEBUG=WARN says more; several ranks on one GPU need parallel.transport = \"mpi\"",
             "NCCL: {} failed: {}", what, ncclGetErrorString(r));
}
void cuda_ok(cudaError_t e, const char* what) {
  CHECK(e == cudaSuccess, "NCCL transport: {} failed: {}", what, cudaGetErrorString(e));
}
ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kF32: return ncclFloat32;
    case DType::kBF16: return ncclBfloat16;
    case DType::kF64: return ncclFloat64;
    case DType::kI32: return ncclInt32;
    case DType::kU8: return ncclUint8;
  }
  FAIL_ERROR("NcclComm: no NCCL type for {}", dtype_name(t));
}
cudaStream_t st(Stream s) { return static_cast<cudaStream_t>(s.handle); }
ncclComm_t nc(void* c) { return static_cast<ncclComm_t>(c); }

}  // namespace

NcclComm::NcclComm(MPI_Comm c) {
  MPI_Comm_rank(c, &rank_);
  MPI_Comm_size(c, &size_);
  ncclUniqueId id{};
  if (rank_ == 0) nccl_ok(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, c);
  ncclComm_t comm = nullptr;
  nccl_ok(ncclCommInitRank(&comm, size_, id, rank_), "ncclCommInitRank");
  comm_ = comm;
  cudaStream_t side = nullptr;
  cuda_ok(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  side_ = side;
}

NcclComm::~NcclComm() {
  for (Pending& p : pending_)
    for (void* e : {p.ready, p.done})
      if (e) cudaEventDestroy(static_cast<cudaEvent_t>(e));
  if (comm_) ncclCommDestroy(nc(comm_));
  if (side_) cudaStreamDestroy(st(Stream{side_}));
}

void NcclComm::do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream s) const {
  if (n == 0) return;
  nccl_ok(ncclAllReduce(x, x, size_t(n), nccl_type(t), op == ReduceOp::kSum ? ncclSum : ncclMax, nc(comm_), st(s)),
          "ncclAllReduce");
}

void NcclComm::do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream s) const {
  if (n == 0) return;
  nccl_ok(ncclReduceScatter(in, out, size_t(n), nccl_type(t), ncclSum, nc(comm_), st(s)), "ncclReduceScatter");
}

void NcclComm::do_all_gather(const void* in, void* out, int64_t n, DType t, Stream s) const {
  if (n == 0) return;
  nccl_ok(ncclAllGather(in, out, size_t(n), nccl_type(t), nc(comm_), st(s)), "ncclAllGather");
}

Comm::Handle NcclComm::do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from,
                                   int /*channel*/, Stream s) const {
  const Handle h = acquire_slot(pending_);
  Pending& p = pending_[size_t(h.id)];
  for (void** e : {&p.ready, &p.done})
    if (!*e) {
      cudaEvent_t ev = nullptr;
      cuda_ok(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
      *e = ev;
    }
  const cudaStream_t side = st(Stream{side_});
  cuda_ok(cudaEventRecord(static_cast<cudaEvent_t>(p.ready), st(s)), "cudaEventRecord");
  cuda_ok(cudaStreamWaitEvent(side, static_cast<cudaEvent_t>(p.ready), 0), "cudaStreamWaitEvent");
  nccl_ok(ncclGroupStart(), "ncclGroupStart");
  nccl_ok(ncclSend(send, size_t(n), nccl_type(t), to, nc(comm_), side), "ncclSend");
  nccl_ok(ncclRecv(recv, size_t(n), nccl_type(t), from, nc(comm_), side), "ncclRecv");
  nccl_ok(ncclGroupEnd(), "ncclGroupEnd");
  cuda_ok(cudaEventRecord(static_cast<cudaEvent_t>(p.done), side), "cudaEventRecord");
  p.stream = s.handle;
  return h;
}

// The caller's stream waits for the exchange: kernels it enqueues next see the received data.
void NcclComm::do_wait(Handle& h) const {
  if (!h.active()) return;
  Pending& p = live_slot(pending_, h);
  cuda_ok(cudaStreamWaitEvent(st(Stream{p.stream}), static_cast<cudaEvent_t>(p.done), 0), "cudaStreamWaitEvent");
  p.busy = false;
  h.id = -1;
}

}  // namespace longctx
#endif  // LONGCTX_NCCL
