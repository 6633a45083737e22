// plan.h — the memory plan's counting: what one rank of a deck's layout holds, per stage, counted by
// the same Arena passes that later allocate it. One code path: StepEngine counts its own rank with
// it before allocating (memory.h: check_memory_fits), `longctx plan` counts every rank of the
// layout in one process, without starting them (src/cli/plan.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "longctx/config.h"
#include "longctx/engine.h"

namespace longctx {

struct StageNeed {
  size_t activations = 0;  // layer activations, their gradients, RoPE tables (model.recompute as set)
  size_t activations_other = 0;  // the same with model.recompute the other way
  size_t ring = 0;         // the ring's K/V blocks and dK/dV accumulators (communication buffers)
  size_t head = 0;         // the LM head's logits chunk and row statistics
  size_t scratch = 0;      // the backend's op scratch outside the arena (B::op_scratch_bytes)
  size_t arena() const { return activations + ring + head; }
};

struct RankNeed {
  int tp_rank = 0, sp_rank = 0, dpsp_rank = 0;
  StateBytes state;               // parameters, gradients, ZeRO-1 optimizer shard
  std::vector<StageNeed> stages;  // per deck stage
  // Per stage, what the rank holds beside its state: the largest arena and op scratch of the
  // stages up to it (neither shrinks). check_memory_fits compares state + peaks[i].
  std::vector<size_t> peaks;
};

enum class PlanBackend { cpu, cuda };
// "fp32 (cpu)" / "bf16 (cuda)".
const char* describe(PlanBackend b);
// False when this build cannot count the backend (cuda without CUDA).
bool plan_backend_available(PlanBackend b);

// One rank's needs for the deck's stages at grid coordinates (tp_rank, sp_rank) and ZeRO-1 shard
// dpsp_rank (of dp·sp), as training allocates them on backend b. No device, no MPI.
RankNeed count_rank(PlanBackend b, const Config& cfg, int tp_rank, int sp_rank, int dpsp_rank);

// "stage 2 (seq_len 4096, micro_batch 1)", per stage: the memory plan's names (numbered from
// first + 1 when cfg holds a deck's stages from index `first` on).
std::vector<std::string> stage_names(const Config& cfg, size_t first = 0);

}  // namespace longctx

namespace longctx {

// `longctx plan DECK`: the memory plan of every rank of the deck's layout, in one process; a deck
// whose stages set their own layouts is planned per layout (each run of stages is one job).
struct PlanOptions {
  int64_t memory = -1;      // host bytes per node (--memory); -1: this machine's (available_memory)
  int64_t gpu_memory = -1;  // bytes per GPU (--gpu-memory); -1: LONGCTX_GPU_MEMORY, this machine's GPU, or unknown
  int64_t ranks_per_node = 0;  // 0: every rank on one node
  int64_t ranks_per_gpu = 1;
};
// Prints the plan; returns 0 when the run fits, 1 when train would refuse it (the same message).
int plan_main(const std::string& deck, const std::vector<std::string>& overrides, const PlanOptions& opt);

}  // namespace longctx
