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
// block's accumulated dK/dV arrives back at its owner. With one rank it is plain blockwise attention.
#pragma once

#include <cstdint>
#include <vector>

#include "longctx/comm.h"

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

class RingAttention {
 public:
  // sp: the sequence-parallel group (nullptr or size 1: a single rank).
  RingAttention(const Comm* sp, bool zigzag);
  // Allocates the ring buffers for B sequences of global length T with local heads NH, NKV.
  void configure(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS);
  // q (B,T_loc,NH,HS), k/v (B,T_loc,NKV,HS) -> o (B,T_loc,NH,HS), lse (B,T_loc,NH). Written.
  void forward(float* o, float* lse, const float* q, const float* k, const float* v);
  // dq, dk, dv are WRITTEN (the gradients through attention of this rank's q, k, v).
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                const float* k, const float* v, const float* o, const float* lse);
  const SeqLayout& layout() const { return mine_; }

 private:
  // The local queries against the K/V block of rank `owner` (k, v in local-block layout).
  void step_forward(int owner, float* o, float* lse, const float* q, const float* k, const float* v);
  void step_backward(int owner, float* dq, float* dk, float* dv, const float* dout, const float* q,
                     const float* k, const float* v, const float* lse);

  void progress();  // drives the pending ring transfers between chunk pairs

  const Comm* sp_;
  bool zigzag_;
  Comm::Pending* pending_[2] = {nullptr, nullptr};  // transfers in flight during a step
  int rank_ = 0, size_ = 1;
  int64_t B_ = 0, NH_ = 0, NKV_ = 0, HS_ = 0, kv_n_ = 0;  // kv_n_: floats of one of k or v
  SeqLayout mine_;
  std::vector<SeqLayout> owners_;  // layout of every rank's block
  std::vector<float> kv_[2], part_, send_, recv_, delta_;
};

}  // namespace longctx
