// ring_attention.h — causal attention over a sequence split across the sequence-parallel ranks.
//
// Layout: "zigzag" cuts the sequence into 2·sp chunks and rank r holds chunks r and 2·sp−1−r (every
// rank then has the same causal work); "contiguous" gives rank r chunk r of sp. Local activations
// are (B, T_loc, heads, HS) with the rank's chunks one after another.
// Forward: K/V blocks travel around the ring (sp steps); at each step the local queries attend to
// the visiting block, chunk pair by chunk pair at their global offsets, and the (O, LSE) partials
// are merged exactly in fp32. Chunk pairs wholly in the future are skipped, not computed. The next
// block's transfer is posted before the compute and progressed between chunk pairs (MPI moves
// large messages mostly inside MPI calls), so the two overlap.
// Backward: K/V travel again, with their dK/dV accumulators one step behind; after sp steps each
// block's accumulated dK/dV arrives back at its owner. A step's calls write the visiting block's
// dK/dV into part_ (no zeroing: the first call on a key range writes it), and only the key rows
// they touched are added into the accumulator that arrived, which then travels on; at the first
// step the calls write the accumulator itself. With one rank it is plain blockwise attention.
#pragma once

#include <cstdint>
#include <vector>

#include "longctx/arena.h"
#include "longctx/comm.h"
#include "longctx/ops.h"

namespace longctx {

struct SeqLayout {
  struct Segment {
    int64_t pos0;    // global position of its first token
    int64_t len;     // tokens
    int64_t local0;  // first local row (within one sequence of the batch)
  };
  int64_t T = 0;      // global sequence length
  int64_t T_loc = 0;  // tokens of each sequence on this rank
  std::vector<Segment> segs;
  std::vector<int64_t> positions() const;  // global position of each local row (T_loc)
};
// Which tokens sequence-parallel rank `rank` of `sp` holds. T must divide as the deck checks.
SeqLayout seq_layout(int64_t T, int rank, int sp, bool zigzag);

// One attention call of a ring step, within one sequence: local query rows [q0, q0 + qn) against
// the visiting block's rows [k0, k0 + kn). shape: causal at the chunks' global positions, or (where
// every key is at or before every query) a full mask, its positions unused. dkv_add: an earlier
// call of the step already wrote these key rows' dK/dV, so this one adds to them (the first call
// on a range writes it, and no buffer needs zeroing).
struct RingCall {
  int64_t q0, qn, k0, kn;
  cpu::AttnShape shape;
  bool dkv_add = false;
};
// Key rows [k0, k0 + kn) of a block that a step's calls touch, in order, adjacent ranges joined.
struct KeyRange {
  int64_t k0, kn;
};
// The calls of queries laid out as `q` against the block laid out as `k`: one per chunk pair that
// sees a key, then full pairs merged where they share their query rows and their key rows are
// adjacent, or the other way round. Zigzag's steps after the first are then one call each (a
// chunk against both visiting chunks, or both chunks against one): fewer, longer kernels. Every
// visible (query, key) pair is in exactly one call. Each call's key rows are either new to the step
// (dkv_add false) or all touched by earlier calls (true): checked.
std::vector<RingCall> ring_calls(const SeqLayout& q, const SeqLayout& k, int64_t NH, int64_t NKV, int64_t HS);
// The key rows the calls touch (every other row of the block gets no gradient from this step).
std::vector<KeyRange> touched_keys(const std::vector<RingCall>& calls);

// Written once for every backend B (backend/cpu.h): activations are B::Act, the (O, LSE) partials
// and the dQ/dK/dV accumulators fp32. Its buffers come from the owner's arena (take_buffers).
template <class B>
class RingAttention {
 public:
  using Act = typename B::Act;
  // sp: the sequence-parallel group (nullptr or size 1: a single rank).
  RingAttention(const B& be, const Comm* sp, bool zigzag);
  // Shapes the ring for `batch` sequences of global length T with local heads NH, NKV (no allocation).
  void configure(int64_t batch, int64_t T, int64_t NH, int64_t NKV, int64_t HS);
  // Takes the ring's buffers for the configured shape (both arena passes call it); those of the
  // backward only `with_backward`.
  void take_buffers(Arena& a, bool with_backward);
  // q (B·T_loc, NH·HS), k/v (B·T_loc, NKV·HS) -> o (B·T_loc, NH·HS), lse (B·T_loc, NH). Written.
  void forward(Tensor<Act> o, Tensor<float> lse, Tensor<const Act> q, Tensor<const Act> k,
               Tensor<const Act> v);
  // dq, dk, dv are WRITTEN (the gradients through attention of this rank's q, k, v).
  void backward(Tensor<Act> dq, Tensor<Act> dk, Tensor<Act> dv, Tensor<const Act> dout,
                Tensor<const Act> q, Tensor<const Act> k, Tensor<const Act> v, Tensor<const Act> o,
                Tensor<const float> lse);
  const SeqLayout& layout() const { return mine_; }

 private:
  // The local queries against the K/V block of rank `owner` (k, v in local-block layout).
  void step_forward(int owner, Tensor<float> o, Tensor<float> lse, Tensor<const Act> q,
                    Tensor<const Act> k, Tensor<const Act> v);
  void step_backward(int owner, Tensor<float> dq, Tensor<float> dk, Tensor<float> dv,
                     Tensor<const Act> dout, Tensor<const Act> q, Tensor<const Act> k,
                     Tensor<const Act> v, Tensor<const float> lse);
  // acc += part on the key rows that owner's calls touched (dK rows, then the same of dV).
  void add_touched(int owner, Tensor<float> acc, Tensor<const float> part);
  void progress();  // drives the pending ring transfers between chunk pairs

  const B& be_;
  const Comm* sp_;
  bool zigzag_;
  Comm::Handle* pending_[2] = {nullptr, nullptr};  // transfers in flight during a step
  int rank_ = 0, size_ = 1;
  int64_t B_ = 0, NH_ = 0, NKV_ = 0, HS_ = 0, rows_ = 0;  // rows_ = B·T_loc
  SeqLayout mine_;
  std::vector<SeqLayout> owners_;  // layout of every rank's block
  std::vector<std::vector<RingCall>> calls_;  // calls_[owner]: the local queries against owner's block
  std::vector<std::vector<KeyRange>> touched_;  // touched_[owner]: the key rows those calls touch
  // kv_: the visiting K then V (2·rows, NKV·HS), double-buffered; part_: this step's dK then dV;
  // dkv_: the accumulated dK/dV travelling with their block, double-buffered (step i sends
  // dkv_[i % 2] and receives into the other); delta_ (rows, NH).
  Tensor<Act> kv_[2];
  Tensor<float> part_, dkv_[2], delta_;
  // Backends whose activations are not fp32 accumulate in these (empty when Act = float).
  Tensor<float> o32_, dq32_, dkv32_;
};

}  // namespace longctx
