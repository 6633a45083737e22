// plan.cpp — the memory plan's counting (plan.h): probes Model<Counting<B>> at a rank's shapes and
// the state arena's takes, with stand-in groups that know their rank and size and move nothing.
#include "longctx/plan.h"

#include <algorithm>

#include "longctx/backend/counting.h"
#include "longctx/backend/cuda.h"
#include "longctx/common.h"
#include "longctx/model.h"
#include "longctx/optim.h"

namespace longctx {

namespace {

// A group of `size` ranks seen from `rank`, for the shapes only: any data movement is a bug.
class ShapeComm final : public Comm {
 public:
  ShapeComm(int rank, int size) { rank_ = rank, size_ = size; }

 protected:
  [[noreturn]] static void none() { FAIL_ERROR("the memory plan's stand-in group moves no data"); }
  void do_all_reduce(void*, int64_t, DType, ReduceOp, Stream) const override { none(); }
  void do_reduce_scatter(const void*, void*, int64_t, DType, Stream) const override { none(); }
  void do_all_gather(const void*, void*, int64_t, DType, Stream) const override { none(); }
  Handle do_exchange(const void*, void*, int64_t, DType, int, int, int, Stream) const override { none(); }
  void do_wait(Handle&) const override { none(); }
  void do_progress(Handle&) const override { none(); }
};

template <class B>
RankNeed count(const Config& cfg, int tp_rank, int sp_rank, int dpsp_rank) {
  const ParallelConfig& p = cfg.parallel;
  RankNeed r;
  r.tp_rank = tp_rank, r.sp_rank = sp_rank, r.dpsp_rank = dpsp_rank;
  const ParamLayout layout = make_param_layout(cfg.model, tp_rank, int(p.tp));
  // ZeRO-1 over dp·sp, as StepEngine cuts it.
  const int64_t D = p.dp * p.sp, shard_n = (layout.total + D - 1) / D;
  const int64_t lo = std::min(layout.total, dpsp_rank * shard_n), hi = std::min(layout.total, lo + shard_n);
  const int64_t spans = int64_t(shard_spans(layout, lo, hi).size());
  r.state = state_bytes<typename B::Param>(D * shard_n, shard_n, spans);

  const ShapeComm tp(tp_rank, int(p.tp)), sp(sp_rank, int(p.sp));
  const ModelParallel par{&tp, &sp, p.tp_mode, p.ring};
  const Counting<B> be;
  r.stages.resize(cfg.stages.size());
  for (const bool other : {false, true}) {
    ModelConfig m = cfg.model;
    if (other) m.recompute = !m.recompute;
    Model<Counting<B>> probe(be, m, layout, nullptr, nullptr, par);
    probe.count_backward();  // a training model: the backward's buffers too
    for (size_t i = 0; i < cfg.stages.size(); ++i) {
      const StageConfig& s = cfg.stages[i];
      probe.arena_bytes(s.micro_batch, s.seq_len);
      const auto& parts = probe.arena_parts();
      StageNeed& n = r.stages[i];
      if (other) {
        n.activations_other = parts.activations;
        continue;
      }
      n.activations = parts.activations, n.ring = parts.ring, n.head = parts.head;
      n.scratch = probe.op_scratch_bytes(s.micro_batch, s.seq_len);
    }
  }
  size_t arena = 0, scratch = 0;  // neither shrinks: a stage holds the largest of those before it
  for (const StageNeed& n : r.stages) {
    arena = std::max(arena, n.arena()), scratch = std::max(scratch, n.scratch);
    r.peaks.push_back(arena + scratch);
  }
  return r;
}

}  // namespace

const char* describe(PlanBackend b) { return b == PlanBackend::cpu ? "CPU (fp32)" : "GPU (bf16)"; }

bool plan_backend_available(PlanBackend b) {
#if defined(LONGCTX_CUDA)
  return true;
#else
  return b == PlanBackend::cpu;
#endif
}

RankNeed count_rank(PlanBackend b, const Config& cfg, int tp_rank, int sp_rank, int dpsp_rank) {
#if defined(LONGCTX_CUDA)
  if (b == PlanBackend::cuda) return count<Cuda>(cfg, tp_rank, sp_rank, dpsp_rank);
#endif
  CHECK_HINT(b == PlanBackend::cpu, "build with CUDA (make CUDA=1, nvcc on PATH)",
             "the GPU memory plan needs the CUDA backend's formulas, which this build lacks");
  return count<Cpu>(cfg, tp_rank, sp_rank, dpsp_rank);
}

std::vector<std::string> stage_names(const Config& cfg, size_t first) {
  std::vector<std::string> names;
  for (size_t i = 0; i < cfg.stages.size(); ++i)
    names.push_back(fmt::format("stage {} (seq_len {}, micro_batch {})", first + i + 1, cfg.stages[i].seq_len,
                                cfg.stages[i].micro_batch));
  return names;
}

}  // namespace longctx
