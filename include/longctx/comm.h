// comm.h — the collectives longctx uses, behind one interface. A Comm is one group of ranks (an
// axis of the process grid, built in parallel/groups.cpp). Implementations: MpiComm (host memory,
// comm_mpi.h); the CUDA backend adds NCCL and an MPI transport staged through pinned memory.
//
// Every operation names its element type (f32, bf16, f64, ...) and the stream it is ordered on
// (null on the host; a cudaStream_t for device buffers), so a device implementation fits without
// touching callers. Element counts are int64_t. Every rank of the group must make the same calls in
// the same order (collectives), except exchange(), which pairs with the neighbours' exchange().
// No MPI type appears here.
#pragma once

#include <cstdint>
#include <vector>

#include "longctx/tensor.h"

namespace longctx {

// The stream an operation is ordered on: a cudaStream_t for device work, null for host work.
struct Stream {
  void* handle = nullptr;
};

enum class ReduceOp { kSum, kMax };

class Comm {
 public:
  // A ring exchange in flight. Returned by exchange(); wait() (or a progress() that finds it done)
  // completes it and marks it inactive. Both buffers must stay untouched until then. Waiting on a
  // stale copy of a handle is refused (the generation tells a reused slot apart).
  struct Handle {
    int id = -1;
    uint32_t gen = 0;
    bool active() const { return id >= 0; }
  };

  virtual ~Comm() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }

  template <class T>
  void all_reduce_sum(T* x, int64_t n, Stream s = {}) const {
    do_all_reduce(x, n, dtype_of<T>(), ReduceOp::kSum, s);
  }
  template <class T>
  void all_reduce_max(T* x, int64_t n, Stream s = {}) const {
    do_all_reduce(x, n, dtype_of<T>(), ReduceOp::kMax, s);
  }
  template <class T>
  void all_reduce_sum(Tensor<T> x, Stream s = {}) const {
    all_reduce_sum(x.data, x.numel(), s);
  }
  // in: size()·n elements (block i goes to rank i); out: n = the sum over ranks of their block.
  template <class T>
  void reduce_scatter_sum(const T* in, T* out, int64_t n, Stream s = {}) const {
    do_reduce_scatter(in, out, n, dtype_of<T>(), s);
  }
  // in: n elements; out: size()·n, block i from rank i.
  template <class T>
  void all_gather(const T* in, T* out, int64_t n, Stream s = {}) const {
    do_all_gather(in, out, n, dtype_of<T>(), s);
  }
  // Non-blocking ring step: send to rank `to`, receive as many elements from rank `from`.
  // Exchanges of different purposes in flight together use different channels (0..7).
  template <class S, class T>
  Handle exchange(Tensor<S> send, Tensor<T> recv, int to, int from, int channel,
                  Stream s = {}) const {
    static_assert(std::is_same_v<std::remove_const_t<S>, T>, "exchange: one element type");
    LONGCTX_CHECK(send.numel() == recv.numel(), "Comm::exchange: sends {} elements, receives {}",
                  send.numel(), recv.numel());
    return do_exchange(send.data, recv.data, send.numel(), dtype_of<T>(), to, from, channel, s);
  }
  void wait(Handle& h) const { do_wait(h); }
  // The untyped forms, for transports that wrap another Comm (comm_staged.h).
  void all_reduce_raw(void* x, int64_t n, DType t, ReduceOp op, Stream s) const { do_all_reduce(x, n, t, op, s); }
  void reduce_scatter_raw(const void* in, void* out, int64_t n, DType t, Stream s) const {
    do_reduce_scatter(in, out, n, t, s);
  }
  void all_gather_raw(const void* in, void* out, int64_t n, DType t, Stream s) const { do_all_gather(in, out, n, t, s); }
  Handle exchange_raw(const void* send, void* recv, int64_t n, DType t, int to, int from, int channel,
                      Stream s) const {
    return do_exchange(send, recv, n, t, to, from, channel, s);
  }
  // Lets the transport advance an exchange (MPI progresses large messages mostly inside MPI
  // calls): called between pieces of the compute that the exchange should overlap.
  void progress(Handle& h) const { do_progress(h); }

 protected:
  // What an implementation provides: the same operations, untyped.
  virtual void do_all_reduce(void* x, int64_t n, DType t, ReduceOp op, Stream s) const = 0;
  virtual void do_reduce_scatter(const void* in, void* out, int64_t n, DType t, Stream s) const = 0;
  virtual void do_all_gather(const void* in, void* out, int64_t n, DType t, Stream s) const = 0;
  virtual Handle do_exchange(const void* send, void* recv, int64_t n, DType t, int to, int from,
                             int channel, Stream s) const = 0;
  virtual void do_wait(Handle& h) const = 0;
  virtual void do_progress(Handle& h) const = 0;

  // For implementations: exchanges in flight live in slots (any type with `bool busy` and
  // `uint32_t gen`), reused and never freed. acquire_slot takes a free one and returns its handle;
  // live_slot is the slot of a handle still in flight (a completed or copied-and-completed handle
  // is refused: the generation tells a reused slot apart).
  template <class Slot>
  static Handle acquire_slot(std::vector<Slot>& slots) {
    size_t id = 0;
    while (id < slots.size() && slots[id].busy) ++id;
    if (id == slots.size()) slots.emplace_back();
    slots[id].busy = true, slots[id].gen += 1;
    return Handle{int(id), slots[id].gen};
  }
  template <class Slot>
  static Slot& live_slot(std::vector<Slot>& slots, const Handle& h) {
    LONGCTX_CHECK(size_t(h.id) < slots.size() && slots[size_t(h.id)].busy && slots[size_t(h.id)].gen == h.gen,
                  "Comm: a stale exchange handle (completed already: a copy waited on twice?)");
    return slots[size_t(h.id)];
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace longctx
