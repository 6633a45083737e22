// train.h — the training driver: stages, micro-batches, gradient reduction, AdamW, checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "longctx/checkpoint.h"
#include "longctx/config.h"
#include "longctx/data.h"
#include "longctx/model.h"
#include "longctx/optim.h"
#include "longctx/params.h"
#include "longctx/topology.h"

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

class Trainer {
 public:
  Trainer(const Config& cfg, MPI_Comm world, const TrainOptions& opt);
  ~Trainer();
  // Trains until the schedule ends, or until `max_steps` more optimizer steps when >= 0.
  void run(int64_t max_steps = -1);
  // Writes a checkpoint of the current state to path (collective).
  void save(const std::string& path);

  const std::vector<StepRecord>& history() const { return history_; }
  const TrainState& state() const { return st_; }
  const std::vector<float>& params() const { return params_; }
  const ParamLayout& layout() const { return layout_; }
  const Topology& topology() const { return topo_; }

 private:
  void start_stage();
  StepRecord step();
  void maybe_checkpoint(bool stage_end);
  void log_step(const StepRecord& r);

  Config cfg_;
  TrainOptions opt_;
  Topology topo_;
  ParamLayout layout_;
  std::vector<float> params_, grads_, master_, m_, v_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<DataSource> data_;
  TrainState st_;
  std::vector<int32_t> sample_, tokens_, targets_;
  std::vector<StepRecord> history_;
  FILE* metrics_ = nullptr;
  double tok_per_s_ = 0.0, started_ = 0.0;
  int64_t configured_stage_ = -1;
};

// `longctx train DECK [--set k=v]... [--resume|--fresh]`; returns the process exit code.
int train_main(const std::string& deck, const std::vector<std::string>& overrides,
               const TrainOptions& opt);

}  // namespace longctx
