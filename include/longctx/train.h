// train.h — the training driver: stages, data, micro-batches, logs, metrics and checkpoint files,
// around the step engine (engine.h) that holds the buffers and does the step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "longctx/checkpoint.h"
#include "longctx/config.h"
#include "longctx/data.h"
#include "longctx/engine.h"
#include "longctx/groups.h"
#include "longctx/params.h"

namespace longctx {

struct StepRecord {
  int64_t stage = 0, stage_step = 0, global_step = 0;  // 1-based step numbers after the step
  double loss = 0.0, grad_norm = 0.0, lr = 0.0;
  int64_t tokens = 0;             // target tokens in this step (all ranks)
  double seconds = 0.0;           // wall time of this step
};

struct TrainOptions {
  bool resume = false;  // continue from the newest checkpoint in checkpoint.dir (if any)
  bool fresh = false;   // delete an earlier run's checkpoints and metrics first
  bool quiet = false;   // no per-step console lines (tests)
  int64_t stop_after_stage = 0;  // > 0: end the process after finishing this stage (1-based)
};

// Training on the process grid of cfg.parallel (dp × sp × tp ranks of `world`):
//  - each data-parallel replica takes its own samples of the step's global batch; the sp ranks of
//    a replica take their chunks of the same sequences; tp ranks share the same tokens;
//  - gradients are summed over dp×sp (all those ranks hold the same parameters) with a
//    reduce-scatter that leaves each rank its ZeRO-1 shard of the flat buffer; the loss is the
//    token-weighted mean over dp×sp; AdamW updates the shard's fp32 master weights and moments,
//    and the parameters are all-gathered again.
class Trainer {
 public:
  Trainer(const Config& cfg, MPI_Comm world, const TrainOptions& opt);
  ~Trainer();
  // Trains until the schedule ends, or until `max_steps` more optimizer steps when >= 0.
  void run(int64_t max_steps = -1);
  // Writes a checkpoint of the current state to path (collective).
  void save(const std::string& path);

  // For tests: the gradient of the next step (normalised, before clipping), without updating;
  // returns the step's mean loss. full_gradient()/full_params() assemble the whole model (the
  // single-rank layout) on every rank from the shards.
  double compute_gradient();
  std::vector<float> full_gradient() const { return engine_->full_gradient(); }
  std::vector<float> full_params() const { return engine_->full_params(); }

  const std::vector<StepRecord>& history() const { return history_; }
  const TrainState& state() const { return st_; }
  const ParamLayout& layout() const { return engine_->layout(); }
  const Grid& grid() const { return groups_->grid(); }
  const StepEngine& engine() const { return *engine_; }
  // The stop signal (SIGTERM/SIGUSR1, signals.h) that ended run() at a step boundary, else 0.
  int interrupted() const { return interrupted_; }

 private:
  void start_stage();
  LossSum accumulate_gradient();  // micro-batches and reductions: the step's gradient in the shard
  StepRecord step();
  void maybe_checkpoint(bool stage_end);
  void evaluate_stage();  // [eval] after_each_stage: the needle evaluation of the stage's final checkpoint
  std::string save_checkpoint(bool verbose);  // the checkpoint of the current step; its path
  void stop_for_signal(int sig);               // checkpoint (if not yet), message, interrupted_
  void log_step(const StepRecord& r);
  void load_start(std::string& from);  // resume, init_from, or fresh weights

  Config cfg_;
  TrainOptions opt_;
  std::unique_ptr<ProcessGroups> groups_;
  std::unique_ptr<StepEngine> engine_;
  std::unique_ptr<DataSource> data_;
  TrainState st_;
  std::vector<int32_t> sample_, tokens_, targets_;
  std::vector<int64_t> positions_;
  std::vector<StepRecord> history_;
  FILE* metrics_ = nullptr;
  double tok_per_s_ = 0.0, started_ = 0.0;
  int64_t configured_stage_ = -1;
  int64_t saved_step_ = -1;  // global step of the newest checkpoint this run wrote or resumed from
  int interrupted_ = 0;
  int64_t fail_rank_ = -1, fail_step_ = -1;  // LONGCTX_FAIL_AT=rank:step (tests of error paths)
};

// OpenBLAS and OpenMP threads per rank: run.threads when > 0; with 0, OMP_NUM_THREADS, else
// SLURM_CPUS_PER_TASK, else all cores for one rank and 1 per rank under MPI. Returns what it chose
// and why ("4 threads per rank (SLURM_CPUS_PER_TASK)").
std::string set_threads(const Config& cfg, int world_size);

// Run outputs (src/train/train_io.cpp). prune: keeps the newest checkpoint.keep periodic checkpoints
// (those at stage ends always stay); remove: --fresh deletes an earlier run's checkpoints and metrics.
void prune_checkpoints(const Config& cfg);
void remove_run_outputs(const Config& cfg);
// Removes checkpoint.dir's ckpt_N.h5.tmp files (writes a killed job never finished); returns them.
std::vector<std::string> remove_unfinished_checkpoints(const Config& cfg);

// `longctx train DECK [--set k=v]... [--resume|--fresh]`; returns the process exit code: 0, or
// kExitInterrupted (signals.h) when SIGTERM/SIGUSR1 stopped it after writing a checkpoint.
int train_main(const std::string& deck, const std::vector<std::string>& overrides,
               const TrainOptions& opt);

}  // namespace longctx
