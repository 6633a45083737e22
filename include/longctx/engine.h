// engine.h — the step engine: everything one optimizer step touches, apart from the driver
// (train.h: stages, data, logs, metrics, checkpoint files).
//
// It holds, in one state arena on the backend's memory, this rank's parameters (B::Param, flat,
// ParamLayout order, padded to dp·sp shards), fp32 gradients, and the ZeRO-1 shard of the fp32
// master weights, Adam moments and reduced gradient; and the Model<B> that works on them. A step:
//   zero_grad(); micro_batch() × batch_accum;      forward + backward, gradients accumulate
//   reduce(local loss)                             tp fix-ups, reduce-scatter over dp×sp into the
//                                                  shard (a sum: 1/the global target count is kept)
//   grad_norm(); update(lr, t, norm)               AdamW on the shard, the 1/count and clip factors
//                                                  applied as it reads the gradient and the new
//                                                  bf16/fp32 parameters written by it; all-gather
// Checkpoints see the state through checkpoint_io(): host views (staged from device memory by a
// device backend) that the HDF5 code reads and fills.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "longctx/arena.h"
#include "longctx/checkpoint.h"
#include "longctx/config.h"
#include "longctx/groups.h"
#include "longctx/lm_head.h"
#include "longctx/params.h"
#include "longctx/ring_attention.h"

namespace longctx {

// What one rank holds, in bytes, for the memory plan (memory.h).
struct StateBytes {
  size_t params = 0, grads = 0, optimizer = 0;  // optimizer: master, m, v, the reduced gradient, span sums
  size_t total() const { return params + grads + optimizer; }
};

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  // The engine of the backend the groups chose (groups.device(): CPU or CUDA). Checks that the state and the
  // largest stage's activations fit in memory (memory.h) before allocating anything.
  static std::unique_ptr<StepEngine> create(const Config& cfg, const ProcessGroups& groups);

  // ---- the model ----
  virtual void configure(int64_t B, int64_t T, double theta) = 0;  // once per stage
  virtual const SeqLayout& seq() const = 0;
  virtual int64_t activation_bytes() const = 0;
  virtual double flops_per_token_fwd() const = 0;

  // ---- one optimizer step ----
  virtual void zero_grad() = 0;
  // tokens, targets: (B, T_loc) host arrays of this rank. Returns this rank's loss sum and count.
  virtual LossSum micro_batch(const int32_t* tokens, const int32_t* targets) = 0;
  // Reduces the step's gradient into the shard (a sum over targets: grad_norm, update and
  // full_gradient apply 1/the global target count as they read it), and returns the global loss
  // sum and count (the same on every rank).
  virtual LossSum reduce(LossSum local) = 0;
  // The global L2 norm of the reduced gradient (each logical element once), on every rank.
  virtual double grad_norm() = 0;
  // Clips to optim.grad_clip given the norm, runs AdamW step t (>= 1), all-gathers the parameters.
  virtual void update(double lr, int64_t t, double grad_norm) = 0;

  // ---- state ----
  virtual void init_params(uint64_t seed) = 0;  // fresh weights (master = parameters)
  // Host views of the state for write_checkpoint / read_checkpoint.
  virtual CheckpointIO checkpoint_io() = 0;
  // After read_checkpoint filled checkpoint_io(): with_optimizer = false takes the master weights
  // from the parameters (a fresh optimizer on loaded weights).
  virtual void loaded(bool with_optimizer) = 0;
  // The whole model (single-rank layout) on every rank, from the shards: for tests.
  virtual std::vector<float> full_gradient() const = 0;
  virtual std::vector<float> full_params() const = 0;

  virtual const ParamLayout& layout() const = 0;
  virtual int64_t shard_size() const = 0;
  // "cpu", or "cuda: NVIDIA H200 (device 0, …), transport mpi"; the device memory in use (0 on the CPU).
  virtual std::string describe_device() const = 0;
  virtual double device_mib() const = 0;
};

// The state arena of a rank: `flat` parameters (Param) and fp32 gradients, the ZeRO-1 shard of
// `shard_n` (master, m, v, the reduced gradient) and one double per shard span (the norm's sums).
// A rank alone in dp×sp (flat == shard_n) reduces nothing: its gradient shard is the gradient
// buffer itself, 4 bytes a parameter less.
// The one list of the state's buffers: StepEngine binds it, the memory plan counts it (plan.h).
template <class Param>
struct StateViews {
  Tensor<Param> params;
  Tensor<float> grads, master, m, v, gshard;
  Tensor<double> span_ss;
};
template <class Param>
StateViews<Param> take_state(Arena& a, int64_t flat, int64_t shard_n, int64_t spans, StateBytes* parts = nullptr) {
  StateViews<Param> s;
  s.params = a.take<Param>({flat});
  const size_t p = a.bytes();
  s.grads = a.take<float>({flat});
  const size_t g = a.bytes();
  s.master = a.take<float>({shard_n}), s.m = a.take<float>({shard_n});
  s.v = a.take<float>({shard_n});
  s.gshard = flat == shard_n ? s.grads : a.take<float>({shard_n});
  s.span_ss = a.take<double>({spans});
  if (parts) *parts = {p, g - p, a.bytes() - g};
  return s;
}
// The bytes of that arena, counted by the same takes.
template <class Param>
StateBytes state_bytes(int64_t flat, int64_t shard_n, int64_t spans) {
  Arena count;
  StateBytes b;
  take_state<Param>(count, flat, shard_n, spans, &b);
  return b;
}

}  // namespace longctx
