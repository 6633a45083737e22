// comm_staged.cpp — Comm for device buffers over MPI, staged through pinned host memory
// (comm_staged.h). Compiled only with CUDA.
#if defined(LONGCTX_CUDA)
#include "longctx/comm_staged.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "longctx/bf16.h"
#include "longctx/common.h"

namespace longctx {

namespace {

void cuda_check(cudaError_t e, const char* what) {
  CHECK_HINT(e == cudaSuccess, "device memory for a staged MPI transfer: check the buffers are on this GPU",
             "{} failed: {}", what, cudaGetErrorString(e));
}
void sync(Stream s) { cuda_check(cudaStreamSynchronize(static_cast<cudaStream_t>(s.handle)), "cudaStreamSynchronize"); }
void d2h(void* host, const void* dev, size_t bytes) {
  if (bytes) cuda_check(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (device to host)");
}
void h2d(void* dev, const void* host, size_t bytes) {
  if (bytes) cuda_check(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (host to device)");
}
void d2d(void* dst, const void* src, size_t bytes, Stream s) {
  if (bytes && dst != src)
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s.handle)),
               "cudaMemcpyAsync (device to device)");
}
// bf16 bits <-> fp32 on the host (bf16 sums are reduced in fp32 and rounded once).
void widen(float* out, const uint16_t* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}
void narrow(uint16_t* out, const float* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_bits(in[i]);
}
char* at(void* p, int64_t i, DType t) { return static_cast<char*>(p) + size_t(i) * dtype_size(t); }
const char* at(const void* p, int64_t i, DType t) { return static_cast<const char*>(p) + size_t(i) * dtype_size(t); }

}  // namespace

StagedMpiComm::StagedMpiComm(MPI_Comm c, size_t stage_bytes) : mpi_(c), stage_bytes_(stage_bytes) {
  rank_ = mpi_.rank(), size_ = mpi_.size();
  CHECK(stage_bytes_ >= 8 * size_t(size_), "StagedMpiComm: {} staging bytes cannot hold one element per rank",
        stage_bytes_);
}

void StagedMpiComm::stage() const {
  if (a_) return;  // on first use: groups of one rank, and groups never used, pin nothing
  cuda_check(cudaMallocHost(&a_, stage_bytes_), "cudaMallocHost");
  cuda_check(cudaMallocHost(&b_, stage_bytes_), "cudaMallocHost");
}

StagedMpiComm::~StagedMpiComm() {
  for (Pending& p : pending_) cudaFreeHost(p.host_send), cudaFreeHost(p.host_recv);
  if (a_) cudaFreeHost(a_), cudaFreeHost(b_);
}

// bf16 sums go through fp32 on the host: the bf16 bits land in a_, widen into b_, are reduced in
// fp32 and rounded back once (MpiComm moves bf16 but does not add it).
void StagedMpiComm::do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream s) const {
  if (size_ == 1) return;  // the sum of one rank is its own data
  sync(s), stage();
  const bool wide = t == DType::kBF16;
  const int64_t piece = int64_t(stage_bytes_ / (wide ? 4 : dtype_size(t)));
  for (int64_t i = 0; i < n; i += piece) {
    const int64_t m = std::min(piece, n - i);
    d2h(a_, at(x, i, t), size_t(m) * dtype_size(t));
    if (wide) {
      widen(static_cast<float*>(b_), static_cast<const uint16_t*>(a_), m);
      mpi_.all_reduce_raw(b_, m, DType::kF32, op, {});
      narrow(static_cast<uint16_t*>(a_), static_cast<const float*>(b_), m);
    } else {
      mpi_.all_reduce_raw(a_, m, t, op, {});
    }
    h2d(at(x, i, t), a_, size_t(m) * dtype_size(t));
  }
}

void StagedMpiComm::do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream s) const {
  const size_t es = dtype_size(t);
  if (size_ == 1) return d2d(out, in, size_t(n) * es, s);
  sync(s), stage();
  const bool wide = t == DType::kBF16;
  const int64_t piece = int64_t(stage_bytes_ / ((wide ? 4 : es) * size_t(size_)));  // size() blocks in a_
  for (int64_t i = 0; i < n; i += piece) {
    const int64_t m = std::min(piece, n - i);
    for (int r = 0; r < size_; ++r) d2h(at(a_, r * m, t), at(in, r * n + i, t), size_t(m) * es);
    if (wide) {  // widen in place from the back (fp32 takes twice the bytes), reduce into b_
      auto* f = static_cast<float*>(a_);
      const auto* h = static_cast<const uint16_t*>(a_);
      for (int64_t j = int64_t(size_) * m - 1; j >= 0; --j) f[j] = bf16_to_float(h[j]);
      mpi_.reduce_scatter_raw(a_, b_, m, DType::kF32, {});
      narrow(static_cast<uint16_t*>(a_), static_cast<const float*>(b_), m);
      h2d(at(out, i, t), a_, size_t(m) * es);
    } else {
      mpi_.reduce_scatter_raw(a_, b_, m, t, {});
      h2d(at(out, i, t), b_, size_t(m) * es);
    }
  }
}

void StagedMpiComm::do_all_gather(const void* in, void* out, int64_t n, DType t, Stream s) const {
  if (size_ == 1) return d2d(out, in, size_t(n) * dtype_size(t), s);
  sync(s), stage();
  const size_t es = dtype_size(t);
  const int64_t piece = int64_t(stage_bytes_ / (es * size_t(size_)));
  for (int64_t i = 0; i < n; i += piece) {
    const int64_t m = std::min(piece, n - i);
    d2h(a_, at(in, i, t), size_t(m) * es);  // staged first: `in` may lie inside `out`
    mpi_.all_gather_raw(a_, b_, m, t, {});
    for (int r = 0; r < size_; ++r) h2d(at(out, r * n + i, t), at(b_, r * m, t), size_t(m) * es);
  }
}

Comm::Handle StagedMpiComm::do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from,
                                        int channel, Stream s) const {
  sync(s);
  const Handle h = acquire_slot(pending_);
  Pending& p = pending_[size_t(h.id)];
  p.bytes = size_t(n) * dtype_size(t);
  if (p.capacity < p.bytes) {  // grown on first use at this size (the first step), then reused
    cudaFreeHost(p.host_send), cudaFreeHost(p.host_recv);
    p.host_send = p.host_recv = nullptr, p.capacity = 0;
    cuda_check(cudaMallocHost(&p.host_send, p.bytes), "cudaMallocHost");
    cuda_check(cudaMallocHost(&p.host_recv, p.bytes), "cudaMallocHost");
    p.capacity = p.bytes;
  }
  d2h(p.host_send, send, p.bytes);
  p.device_recv = recv;
  p.inner = mpi_.exchange_raw(p.host_send, p.host_recv, n, t, to, from, channel, {});
  return h;
}

void StagedMpiComm::finish(Pending& p) const {
  h2d(p.device_recv, p.host_recv, p.bytes);
  p.busy = false;
}

void StagedMpiComm::do_wait(Handle& h) const {
  if (!h.active()) return;
  Pending& p = live_slot(pending_, h);
  mpi_.wait(p.inner);
  finish(p);
  h.id = -1;
}

void StagedMpiComm::do_progress(Handle& h) const {
  if (!h.active()) return;
  Pending& p = live_slot(pending_, h);
  mpi_.progress(p.inner);
  if (!p.inner.active()) finish(p), h.id = -1;
}

}  // namespace longctx
#endif  // LONGCTX_CUDA
